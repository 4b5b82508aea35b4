/* CPython extension types over the C core: RangeSet, ReassemblyBuffer and PacketCipher.
 *
 * The logic lives in rangeset.c, reassembly.c and aead.c; this file only converts
 * arguments and results.  A method call is one C call: methods are
 * METH_FASTCALL (no argument tuple), ints are read with the C API, STREAM
 * data and packets through the buffer protocol, and bytes / tuples / lists are built here.
 * RangeSet and ReassemblyBuffer behave exactly as the pure-Python twin
 * (quicish.native.pure): the exceptions are made by pure's own error functions (looked
 * up once, errors are rare) and RangeSet subclasses pure.AbstractRangeSet.
 * PacketCipher (AES-GCM packet protection over the system libcrypto, which aead.c
 * loads at first use) returns what quicish.wire.protection's Python path returns.
 *
 * The extension module is built by cffi (build_core.py), which exposes one
 * function of this file, qr_export_types: it creates the three types (heap types,
 * PyType_FromSpec) and sets them as attributes of the extension module
 * (quicish.native.accelerated calls it once at import).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "aead.h"
#include "core.h"

/* ------------------------------------------------------------------ shared */

/* Objects of the pure twin: its error functions and the RangeSet base class. */
enum {
    F_RANGE_ERROR,
    F_OFFSET_ERROR,
    F_FLOW_ERROR,
    F_FINAL_CHANGED_ERROR,
    F_FINAL_BEYOND_ERROR,
    F_FINAL_BELOW_ERROR,
    F_ACK_FRAME_ERROR,
    F_ABSTRACT_RANGE_SET,
    F_FRAGMENTS_ERROR,
    F_COUNT
};

static const char *const pure_names[F_COUNT] = {
    "range_error",        "offset_error",      "flow_error",      "final_changed_error",
    "final_beyond_error", "final_below_error", "ack_frame_error", "AbstractRangeSet",
    "fragments_error",
};

static PyObject *pure_obj[F_COUNT];
static PyObject *str_ranges, *str_offset, *str_final_size, *str_max_offset, *int_one;
static PyObject *str_max_fragments;

/* Raise the exception that pure's error function `which` returns for (a, b). */
static PyObject *raise_pure(int which, PyObject *a, PyObject *b)
{
    PyObject *exc = PyObject_CallFunctionObjArgs(pure_obj[which], a, b, NULL);
    if (exc) {
        PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
        Py_DECREF(exc);
    }
    return NULL;
}

static PyObject *raise_pure_u64(int which, PyObject *a, uint64_t b)
{
    PyObject *bo = PyLong_FromUnsignedLongLong(b);
    if (bo) {
        raise_pure(which, a, bo);
        Py_DECREF(bo);
    }
    return NULL;
}

enum { V_ERR = -1, V_OK = 0, V_NEG = 1, V_BIG = 2 };

/* An int argument (or an object with __index__) as a uint64: V_OK with *out in
 * [0, 2^63), V_NEG for a negative value, V_BIG for 2^63 or more (*out = UINT64_MAX,
 * which every caller treats like the true value: invalid, or "all"), V_ERR with an
 * exception set for a non-integer.  Never raises for an int. */
static int get_u64(PyObject *o, uint64_t *out)
{
    int overflow;
    long long v = PyLong_AsLongLongAndOverflow(o, &overflow);
    if (overflow > 0) {
        *out = UINT64_MAX;
        return V_BIG;
    }
    if (overflow < 0 || v < 0) {
        if (v == -1 && !overflow && PyErr_Occurred())
            return V_ERR;
        *out = 0;
        return V_NEG;
    }
    *out = (uint64_t)v;
    return V_OK;
}

/* An int in [0, 2^62 - 1] (a QUIC varint): 0; anything else: -1, no exception. */
static int get_varint(PyObject *o, uint64_t *out)
{
    uint64_t v;
    if (!PyLong_Check(o))
        return -1;
    if (get_u64(o, &v) != V_OK || v > QR_VARINT_MAX) {
        PyErr_Clear(); /* nothing is set for an int; an int subclass's __index__ is not called */
        return -1;
    }
    *out = v;
    return 0;
}

/* Arguments of a METH_FASTCALL | METH_KEYWORDS method by Python's rules: out[0..nmax)
 * gets the positional and keyword arguments (borrowed), NULL for an omitted optional
 * one; the first nreq are required.  -1 with a TypeError otherwise. */
static int parse_args(const char *fname, PyObject *const *args, Py_ssize_t nargs,
                      PyObject *kwnames, const char *const *names, Py_ssize_t nreq,
                      Py_ssize_t nmax, PyObject **out)
{
    Py_ssize_t i, k, nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;
    if (nargs > nmax) {
        if (nreq == nmax)
            PyErr_Format(PyExc_TypeError, "%s() takes %zd positional argument%s but %zd %s given",
                         fname, nmax + 1, nmax ? "s" : "", nargs + 1, nargs ? "were" : "was");
        else
            PyErr_Format(PyExc_TypeError,
                         "%s() takes from %zd to %zd positional arguments but %zd were given",
                         fname, nreq + 1, nmax + 1, nargs + 1);
        return -1;
    }
    for (i = 0; i < nmax; i++)
        out[i] = i < nargs ? args[i] : NULL;
    for (k = 0; k < nkw; k++) {
        PyObject *key = PyTuple_GET_ITEM(kwnames, k);
        for (i = 0; i < nmax; i++)
            if (PyUnicode_CompareWithASCIIString(key, names[i]) == 0)
                break;
        if (i == nmax) {
            PyErr_Format(PyExc_TypeError, "%s() got an unexpected keyword argument '%U'", fname,
                         key);
            return -1;
        }
        if (out[i]) {
            PyErr_Format(PyExc_TypeError, "%s() got multiple values for argument '%s'", fname,
                         names[i]);
            return -1;
        }
        out[i] = args[nargs + k];
    }
    for (i = 0; i < nreq; i++) {
        if (!out[i]) {
            PyErr_Format(PyExc_TypeError, "%s() missing required argument '%s' (pos %zd)", fname,
                         names[i], i + 1);
            return -1;
        }
    }
    return 0;
}

/* The usual case without keywords in one comparison, else parse_args. */
#define PARSE(fname, names, nreq, nmax, out)                                                  \
    do {                                                                                      \
        if (!kwnames && nargs >= (nreq) && nargs == (nmax)) {                                 \
            Py_ssize_t i_;                                                                    \
            for (i_ = 0; i_ < (nmax); i_++)                                                   \
                (out)[i_] = args[i_];                                                         \
        } else if (parse_args(fname, args, nargs, kwnames, names, nreq, nmax, out) < 0) {     \
            return NULL;                                                                      \
        }                                                                                     \
    } while (0)

static PyObject *u64_pair(uint64_t a, uint64_t b)
{
    PyObject *t = PyTuple_New(2), *x;
    if (!t)
        return NULL;
    if (!(x = PyLong_FromUnsignedLongLong(a))) {
        Py_DECREF(t);
        return NULL;
    }
    PyTuple_SET_ITEM(t, 0, x);
    if (!(x = PyLong_FromUnsignedLongLong(b))) {
        Py_DECREF(t);
        return NULL;
    }
    PyTuple_SET_ITEM(t, 1, x);
    return t;
}

/* ---------------------------------------------------------------- RangeSet */

typedef struct {
    PyObject_HEAD
    qr_rangeset rs;
    PyObject *max_ranges; /* the int given, as an exact int */
} RangeSetObject;

#define RS(op) (&((RangeSetObject *)(op))->rs)

static PyObject *rs_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"max_ranges", NULL};
    PyObject *arg = NULL, *max_obj;
    RangeSetObject *self;
    uint64_t max = 256;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|O:RangeSet", kwlist, &arg))
        return NULL;
    if (arg) {
        if (!PyLong_Check(arg) || get_u64(arg, &max) == V_NEG || max == 0) {
            PyErr_Format(PyExc_ValueError, "max_ranges must be a positive int, got %R", arg);
            return NULL;
        }
        max_obj = PyNumber_Index(arg); /* an exact int (True -> 1), as pure's 2 * n // 2 */
    } else {
        max_obj = PyLong_FromLong(256);
    }
    if (!max_obj)
        return NULL;
    self = (RangeSetObject *)type->tp_alloc(type, 0);
    if (!self) {
        Py_DECREF(max_obj);
        return NULL;
    }
    qr_rs_init(&self->rs, max > SIZE_MAX ? SIZE_MAX : (size_t)max);
    self->max_ranges = max_obj;
    return (PyObject *)self;
}

static int rs_traverse(PyObject *op, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(op)); /* instances of a heap type own a reference to it */
    return 0;
}

static void rs_dealloc(PyObject *op)
{
    PyTypeObject *tp = Py_TYPE(op);
    PyObject_GC_UnTrack(op);
    qr_rs_release(RS(op));
    Py_CLEAR(((RangeSetObject *)op)->max_ranges);
    tp->tp_free(op);
    Py_DECREF(tp);
}

static PyObject *rs_memory_error(void)
{
    PyErr_SetString(PyExc_MemoryError, "RangeSet");
    return NULL;
}

/* add and subtract: the same checks as pure's `not 0 <= start < stop <= VALUE_MAX`. */
static PyObject *rs_change(PyObject *self, PyObject *const *args, Py_ssize_t nargs,
                          PyObject *kwnames, int subtract)
{
    static const char *const names[] = {"start", "stop"};
    PyObject *a[2];
    uint64_t start, stop;
    int ks, kt, r;
    PARSE(subtract ? "RangeSet.subtract" : "RangeSet.add", names, 2, 2, a);
    ks = get_u64(a[0], &start);
    if (ks == V_ERR)
        return NULL;
    if (ks == V_NEG)
        return raise_pure(F_RANGE_ERROR, a[0], a[1]);
    kt = get_u64(a[1], &stop);
    if (kt == V_ERR)
        return NULL;
    if (ks != V_OK || kt != V_OK)
        return raise_pure(F_RANGE_ERROR, a[0], a[1]);
    r = subtract ? qr_rs_subtract(RS(self), start, stop) : qr_rs_add(RS(self), start, stop);
    if (r == QR_OK)
        Py_RETURN_NONE;
    if (r == QR_ENOMEM)
        return rs_memory_error();
    return raise_pure(F_RANGE_ERROR, a[0], a[1]);
}

static PyObject *rs_add(PyObject *self, PyObject *const *args, Py_ssize_t nargs,
                        PyObject *kwnames)
{
    return rs_change(self, args, nargs, kwnames, 0);
}

static PyObject *rs_subtract(PyObject *self, PyObject *const *args, Py_ssize_t nargs,
                             PyObject *kwnames)
{
    return rs_change(self, args, nargs, kwnames, 1);
}

static PyObject *rs_add_packet(PyObject *self, PyObject *const *args, Py_ssize_t nargs,
                               PyObject *kwnames)
{
    static const char *const names[] = {"pn"};
    PyObject *a[1], *stop;
    uint64_t pn;
    int k, r;
    PARSE("RangeSet.add_packet", names, 1, 1, a);
    k = get_u64(a[0], &pn);
    if (k == V_ERR)
        return NULL;
    if (k == V_OK) {
        r = qr_rs_add_packet(RS(self), pn);
        if (r == 1)
            Py_RETURN_TRUE;
        if (r == 0)
            Py_RETURN_FALSE;
        if (r == QR_ENOMEM)
            return rs_memory_error();
    }
    stop = PyNumber_Add(a[0], int_one);
    if (stop) {
        raise_pure(F_RANGE_ERROR, a[0], stop);
        Py_DECREF(stop);
    }
    return NULL;
}

/* The frame for validated arguments; max_ranges >= 1 (beyond size_t: all ranges). */
static PyObject *rs_build_ack(PyObject *self, uint64_t delay, const uint64_t *ecn,
                              uint64_t max_ranges)
{
    qr_rangeset *rs = RS(self);
    size_t k = max_ranges > SIZE_MAX ? SIZE_MAX : (size_t)max_ranges;
    for (;;) {
        int64_t n = ecn ? qr_rs_ack_frame_ecn(rs, delay, k, ecn[0], ecn[1], ecn[2])
                        : qr_rs_ack_frame(rs, delay, k);
        if (n > 0)
            return PyBytes_FromStringAndSize(rs->out, (Py_ssize_t)n);
        if (n == QR_ENOSPC) { /* first frame, or more ranges than ever: grow rs->out */
            if (qr_rs_reserve_out(rs) == QR_OK)
                continue;
        } else if (n != QR_ENOMEM) {
            PyErr_Format(PyExc_SystemError, "unexpected C core result %lld", (long long)n);
            return NULL;
        }
        return rs_memory_error();
    }
}

/* max_ranges >= 1 as a uint64 (UINT64_MAX beyond): 0, else -1 (no exception). */
static int get_count(PyObject *o, uint64_t *out)
{
    int k;
    if (!PyLong_Check(o))
        return -1;
    k = get_u64(o, out);
    return (k == V_OK && *out >= 1) || k == V_BIG ? 0 : -1;
}

/* Anything but an int delay, an exact tuple of 3 int counts (or None) and an int
 * max_ranges on a non-empty set: pure's ack_frame_error decides, then the valid
 * remainder (e.g. ecn as a list or another iterable, bools) is converted here. */
static PyObject *rs_ack_frame_slow(PyObject *self, PyObject *delay_o, PyObject *ecn_o,
                                   PyObject *max_o)
{
    PyObject *counts = NULL, *err, *result = NULL;
    uint64_t delay, max, ecn[3];
    int i;
    if (ecn_o != Py_None) {
        /* Read once: ecn may be a one-shot iterator (which ack_frame_error then gets as
         * this tuple; any other ecn it gets as given, for pure's exact message). */
        counts = PySequence_Tuple(ecn_o);
        if (!counts) {
            if (!PyErr_ExceptionMatches(PyExc_TypeError))
                return NULL;
            PyErr_Clear(); /* not iterable: ack_frame_error reports it */
        }
    }
    err = PyObject_CallFunction(pure_obj[F_ACK_FRAME_ERROR], "OOOO",
                                RS(self)->len ? Py_False : Py_True, delay_o,
                                counts && PyIter_Check(ecn_o) ? counts : ecn_o,
                                max_o);
    if (!err)
        goto done;
    if (err != Py_None) {
        PyErr_SetObject((PyObject *)Py_TYPE(err), err);
        Py_DECREF(err);
        goto done;
    }
    Py_DECREF(err);
    if (get_varint(delay_o, &delay) < 0 || get_count(max_o, &max) < 0)
        goto inconsistent;
    if (counts) {
        if (PyTuple_GET_SIZE(counts) != 3)
            goto inconsistent;
        for (i = 0; i < 3; i++)
            if (get_varint(PyTuple_GET_ITEM(counts, i), &ecn[i]) < 0)
                goto inconsistent;
    } else if (ecn_o != Py_None) {
        goto inconsistent;
    }
    result = rs_build_ack(self, delay, counts ? ecn : NULL, max);
    goto done;
inconsistent: /* ack_frame_error accepted what this file rejects: a bug */
    PyErr_SetString(PyExc_SystemError, "RangeSet.ack_frame: arguments accepted inconsistently");
done:
    Py_XDECREF(counts);
    return result;
}

static PyObject *rs_ack_frame(PyObject *self, PyObject *const *args, Py_ssize_t nargs,
                              PyObject *kwnames)
{
    static const char *const names[] = {"delay", "ecn", "max_ranges"};
    PyObject *a[3];
    uint64_t delay, max, ecn[3];
    PARSE("RangeSet.ack_frame", names, 3, 3, a);
    if (!RS(self)->len || get_varint(a[0], &delay) < 0 || get_count(a[2], &max) < 0)
        return rs_ack_frame_slow(self, a[0], a[1], a[2]);
    if (a[1] == Py_None)
        return rs_build_ack(self, delay, NULL, max);
    if (!PyTuple_CheckExact(a[1]) || PyTuple_GET_SIZE(a[1]) != 3 ||
        get_varint(PyTuple_GET_ITEM(a[1], 0), &ecn[0]) < 0 ||
        get_varint(PyTuple_GET_ITEM(a[1], 1), &ecn[1]) < 0 ||
        get_varint(PyTuple_GET_ITEM(a[1], 2), &ecn[2]) < 0)
        return rs_ack_frame_slow(self, a[0], a[1], a[2]);
    return rs_build_ack(self, delay, ecn, max);
}

static PyObject *rs_drop_below(PyObject *self, PyObject *const *args, Py_ssize_t nargs,
                               PyObject *kwnames)
{
    static const char *const names[] = {"value"};
    PyObject *a[1];
    uint64_t value;
    int k;
    PARSE("RangeSet.drop_below", names, 1, 1, a);
    k = get_u64(a[0], &value);
    if (k == V_ERR)
        return NULL;
    if (k != V_NEG && value > 0) /* V_BIG: UINT64_MAX, above every range */
        qr_rs_drop_below(RS(self), value);
    Py_RETURN_NONE;
}

static int rs_contains(PyObject *self, PyObject *value)
{
    uint64_t v;
    if (!PyLong_Check(value) || get_u64(value, &v) != V_OK)
        return 0; /* not an int, negative, or above every range: pure says False */
    return qr_rs_contains(RS(self), v);
}

/* rs.__contains__ as a method (METH_COEXIST, like dict's): cheaper to call than the
 * slot wrapper; `x in rs` uses the sq_contains slot directly either way. */
static PyObject *rs_contains_method(PyObject *self, PyObject *value)
{
    return PyBool_FromLong(rs_contains(self, value));
}

static Py_ssize_t rs_len(PyObject *self)
{
    return (Py_ssize_t)RS(self)->len;
}

static int rs_bool(PyObject *self)
{
    return RS(self)->len != 0;
}

static PyObject *rs_bounds(PyObject *self, PyObject *Py_UNUSED(ignored))
{
    qr_rangeset *rs = RS(self);
    if (!rs->len) {
        PyErr_SetString(PyExc_ValueError, "empty RangeSet has no bounds");
        return NULL;
    }
    return u64_pair(rs->b[0], rs->b[2 * rs->len - 1]);
}

static PyObject *rs_list(PyObject *self, int descending)
{
    qr_rangeset *rs = RS(self);
    size_t n = rs->len, i;
    PyObject *list = PyList_New((Py_ssize_t)n);
    if (!list)
        return NULL;
    for (i = 0; i < n; i++) {
        size_t j = descending ? n - 1 - i : i;
        PyObject *pair = u64_pair(rs->b[2 * j], rs->b[2 * j + 1]);
        if (!pair) {
            Py_DECREF(list);
            return NULL;
        }
        PyList_SET_ITEM(list, (Py_ssize_t)i, pair);
    }
    return list;
}

static PyObject *rs_ranges(PyObject *self, PyObject *Py_UNUSED(ignored))
{
    return rs_list(self, 0);
}

static PyObject *rs_descending(PyObject *self, PyObject *Py_UNUSED(ignored))
{
    return rs_list(self, 1);
}

static PyObject *rs_iter(PyObject *self)
{
    PyObject *list = rs_list(self, 0), *it;
    if (!list)
        return NULL;
    it = PyObject_GetIter(list);
    Py_DECREF(list);
    return it;
}

static PyObject *rs_repr(PyObject *self)
{
    PyObject *list = rs_list(self, 0), *s;
    if (!list)
        return NULL;
    s = PyUnicode_FromFormat("RangeSet(%R)", list);
    Py_DECREF(list);
    return s;
}

/* pure's AbstractRangeSet.__eq__: equal ranges() for any AbstractRangeSet. */
static PyObject *rs_richcompare(PyObject *self, PyObject *other, int op)
{
    PyObject *mine, *theirs, *result;
    int r;
    if (op != Py_EQ && op != Py_NE)
        Py_RETURN_NOTIMPLEMENTED;
    r = PyObject_IsInstance(other, pure_obj[F_ABSTRACT_RANGE_SET]);
    if (r < 0)
        return NULL;
    if (!r)
        Py_RETURN_NOTIMPLEMENTED;
    if (!(mine = rs_list(self, 0)))
        return NULL;
    theirs = PyObject_CallMethodNoArgs(other, str_ranges);
    if (!theirs) {
        Py_DECREF(mine);
        return NULL;
    }
    result = PyObject_RichCompare(mine, theirs, op);
    Py_DECREF(mine);
    Py_DECREF(theirs);
    return result;
}

static PyObject *rs_get_max_ranges(PyObject *self, void *Py_UNUSED(closure))
{
    PyObject *m = ((RangeSetObject *)self)->max_ranges;
    Py_INCREF(m);
    return m;
}

static PyObject *rs_get_floor(PyObject *self, void *Py_UNUSED(closure))
{
    return PyLong_FromUnsignedLongLong(RS(self)->floor);
}

#define FASTCALL_KW (METH_FASTCALL | METH_KEYWORDS)

static PyMethodDef rs_methods[] = {
    {"add", (PyCFunction)(void (*)(void))rs_add, FASTCALL_KW,
     PyDoc_STR("add($self, start, stop, /)\n--\n\n"
               "Add ``[start, stop)``, merging with overlapping or adjacent ranges.")},
    {"add_packet", (PyCFunction)(void (*)(void))rs_add_packet, FASTCALL_KW,
     PyDoc_STR("Add the single value ``pn``; False if it was already present (a duplicate), "
               "or is below ``floor``.")},
    {"ack_frame", (PyCFunction)(void (*)(void))rs_ack_frame, FASTCALL_KW,
     PyDoc_STR("The complete ACK frame (type 0x02, or ACK_ECN 0x03 with ``ecn`` = ECT(0), "
               "ECT(1), CE counts) for the highest ``max_ranges`` ranges, RFC 9000 section "
               "19.3.")},
    {"subtract", (PyCFunction)(void (*)(void))rs_subtract, FASTCALL_KW,
     PyDoc_STR("Remove ``[start, stop)``; a split beyond ``max_ranges`` drops the lowest "
               "range.")},
    {"drop_below", (PyCFunction)(void (*)(void))rs_drop_below, FASTCALL_KW,
     PyDoc_STR("Remove every value below ``value``.")},
    {"__contains__", (PyCFunction)rs_contains_method, METH_O | METH_COEXIST, NULL},
    {"bounds", rs_bounds, METH_NOARGS,
     PyDoc_STR("``(lowest start, highest stop)``; ValueError when empty.")},
    {"ranges", rs_ranges, METH_NOARGS, PyDoc_STR("Ascending ``(start, stop)`` pairs.")},
    {"descending", rs_descending, METH_NOARGS,
     PyDoc_STR("``(start, stop)`` pairs, highest first (the order of ACK frame ranges).")},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef rs_getset[] = {
    {"max_ranges", rs_get_max_ranges, NULL, NULL, NULL},
    {"floor", rs_get_floor, NULL,
     PyDoc_STR("The highest stop of a range dropped for ``max_ranges`` (0 before any): "
               "``add_packet`` reports values below it as duplicates."), NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot rs_slots[] = {
    {Py_tp_doc, "Sorted disjoint half-open ranges ``[start, stop)``.\n\n"
                "At most ``max_ranges`` ranges are kept: beyond that the lowest are dropped, "
                "and ``floor`` rises to the highest stop dropped."},
    {Py_tp_new, rs_new},
    {Py_tp_dealloc, rs_dealloc},
    {Py_tp_traverse, rs_traverse},
    {Py_tp_methods, rs_methods},
    {Py_tp_getset, rs_getset},
    {Py_tp_richcompare, rs_richcompare},
    {Py_tp_repr, rs_repr},
    {Py_tp_iter, rs_iter},
    {Py_sq_length, rs_len},
    {Py_sq_contains, rs_contains},
    {Py_nb_bool, rs_bool},
    {0, NULL},
};

static char rs_name[200];

/* Garbage-collected because its base, pure.AbstractRangeSet (a class statement), is. */
static PyType_Spec rs_spec = {
    rs_name,
    sizeof(RangeSetObject),
    0,
    Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_IMMUTABLETYPE,
    rs_slots,
};

/* -------------------------------------------------------- ReassemblyBuffer */

typedef struct {
    PyObject_HEAD
    qr_reasm ra;
} ReasmObject;

#define RA(op) (&((ReasmObject *)(op))->ra)

/* pure's check_offset: an int in [0, 2^62], else its offset_error. */
static int check_offset(PyObject *name, PyObject *value, uint64_t *out)
{
    if (PyLong_Check(value) && get_u64(value, out) == V_OK && *out <= QR_VALUE_MAX)
        return 0;
    raise_pure(F_OFFSET_ERROR, name, value);
    return -1;
}

static PyObject *ra_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"max_offset", NULL};
    PyObject *arg, *self;
    uint64_t max;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O:ReassemblyBuffer", kwlist, &arg))
        return NULL;
    if (check_offset(str_max_offset, arg, &max) < 0)
        return NULL;
    self = type->tp_alloc(type, 0);
    if (self)
        qr_ra_init(RA(self), max);
    return self;
}

static void ra_dealloc(PyObject *op)
{
    PyTypeObject *tp = Py_TYPE(op);
    qr_ra_release(RA(op));
    tp->tp_free(op);
    Py_DECREF(tp);
}

/* The exception for a negative qr_ra_insert result, end = offset + len as pure computes it. */
static PyObject *ra_error(PyObject *self, int64_t code, PyObject *offset, Py_ssize_t len)
{
    qr_reasm *ra = RA(self);
    PyObject *n, *end;
    uint64_t other;
    int which;
    switch (code) {
    case QR_EFLOW:
        which = F_FLOW_ERROR;
        other = ra->max_offset;
        break;
    case QR_EFINAL_CHANGED:
        which = F_FINAL_CHANGED_ERROR;
        other = ra->final_size;
        break;
    case QR_EFINAL_BEYOND:
        which = F_FINAL_BEYOND_ERROR;
        other = ra->final_size;
        break;
    case QR_EFINAL_BELOW:
        which = F_FINAL_BELOW_ERROR;
        other = ra->highest_offset;
        break;
    case QR_EFRAGMENTS:
        if ((end = PyLong_FromUnsignedLongLong(ra->fragments))) {
            raise_pure_u64(F_FRAGMENTS_ERROR, end, ra->max_fragments);
            Py_DECREF(end);
        }
        return NULL;
    default:
        PyErr_SetString(PyExc_MemoryError, "ReassemblyBuffer");
        return NULL;
    }
    if (!(n = PyLong_FromSsize_t(len)))
        return NULL;
    end = PyNumber_Add(offset, n);
    Py_DECREF(n);
    if (end) {
        raise_pure_u64(which, end, other);
        Py_DECREF(end);
    }
    return NULL;
}

/* An offset argument: V_OK (offset set), V_BIG (offset set to 2^62 + 1: the true value
 * fails the same checks, and errors are reported with the true value), or NULL returned
 * with pure's offset_error (negative) or a TypeError. */
static int get_offset(PyObject *name, PyObject *o, uint64_t *offset)
{
    int k = get_u64(o, offset);
    if (k == V_NEG) {
        raise_pure(F_OFFSET_ERROR, name, o);
        return V_ERR;
    }
    if (k == V_BIG)
        *offset = QR_VALUE_MAX + 1;
    return k;
}

static PyObject *ra_insert(PyObject *self, PyObject *const *args, Py_ssize_t nargs,
                           PyObject *kwnames)
{
    static const char *const names[] = {"offset", "data", "fin"};
    PyObject *a[3], *copy = NULL;
    Py_buffer view;
    const char *data;
    Py_ssize_t len;
    uint64_t offset;
    int fin = 0, have_view = 0;
    int64_t r;
    if (!kwnames && nargs == 2) {
        a[0] = args[0];
        a[1] = args[1];
        a[2] = NULL;
    } else {
        PARSE("ReassemblyBuffer.insert", names, 2, 3, a);
    }
    if (get_offset(str_offset, a[0], &offset) == V_ERR)
        return NULL;
    if (a[2] && (fin = PyObject_IsTrue(a[2])) < 0)
        return NULL;
    if (PyBytes_CheckExact(a[1])) {
        data = PyBytes_AS_STRING(a[1]);
        len = PyBytes_GET_SIZE(a[1]);
    } else if (PyObject_GetBuffer(a[1], &view, PyBUF_SIMPLE) == 0) {
        have_view = 1;
        data = view.buf;
        len = view.len;
    } else {
        /* A non-contiguous buffer (a strided memoryview): pure copies it too. */
        if (!PyErr_ExceptionMatches(PyExc_BufferError) || !PyObject_CheckBuffer(a[1]))
            return NULL;
        PyErr_Clear();
        if (!(copy = PyBytes_FromObject(a[1])))
            return NULL;
        data = PyBytes_AS_STRING(copy);
        len = PyBytes_GET_SIZE(copy);
    }
    r = qr_ra_insert(RA(self), offset, data, (size_t)len, fin);
    if (have_view)
        PyBuffer_Release(&view);
    Py_XDECREF(copy);
    if (r >= 0)
        return PyLong_FromLongLong(r);
    return ra_error(self, r, a[0], len);
}

static PyObject *ra_read(PyObject *self, PyObject *const *args, Py_ssize_t nargs,
                         PyObject *kwnames)
{
    static const char *const names[] = {"max_bytes"};
    PyObject *a[1], *out;
    qr_reasm *ra = RA(self);
    uint64_t n = ra->readable, max;
    if (!kwnames && nargs == 0)
        a[0] = NULL;
    else
        PARSE("ReassemblyBuffer.read", names, 0, 1, a);
    if (a[0]) {
        int k = get_u64(a[0], &max);
        if (k == V_ERR)
            return NULL;
        if (k == V_OK && max < n) /* negative or huge: everything readable */
            n = max;
    }
    if (n > (uint64_t)PY_SSIZE_T_MAX)
        return PyErr_NoMemory();
    /* The bytes object first, so that a failed allocation consumes nothing. */
    out = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)n);
    if (out && n)
        qr_ra_read_into(ra, PyBytes_AS_STRING(out), n);
    return out;
}

static PyObject *ra_set_final_size(PyObject *self, PyObject *const *args, Py_ssize_t nargs,
                                   PyObject *kwnames)
{
    static const char *const names[] = {"size"};
    PyObject *a[1];
    uint64_t size;
    int64_t r;
    PARSE("ReassemblyBuffer.set_final_size", names, 1, 1, a);
    if (get_offset(str_final_size, a[0], &size) == V_ERR)
        return NULL;
    r = qr_ra_insert(RA(self), size, "", 0, 1);
    if (r >= 0)
        return PyLong_FromLongLong(r);
    return ra_error(self, r, a[0], 0);
}

static PyObject *ra_memory(PyObject *self, PyObject *Py_UNUSED(ignored))
{
    return PyLong_FromSize_t(qr_ra_memory(RA(self)));
}

static PyObject *ra_get_max_offset(PyObject *self, void *Py_UNUSED(closure))
{
    return PyLong_FromUnsignedLongLong(RA(self)->max_offset);
}

static int ra_set_max_offset(PyObject *self, PyObject *value, void *Py_UNUSED(closure))
{
    uint64_t max;
    if (!value) {
        PyErr_SetString(PyExc_AttributeError,
                        "property 'max_offset' of 'ReassemblyBuffer' object has no deleter");
        return -1;
    }
    if (check_offset(str_max_offset, value, &max) < 0)
        return -1;
    RA(self)->max_offset = max;
    return 0;
}

static PyObject *ra_get_max_fragments(PyObject *self, void *Py_UNUSED(closure))
{
    return PyLong_FromUnsignedLongLong(RA(self)->max_fragments);
}

static int ra_set_max_fragments(PyObject *self, PyObject *value, void *Py_UNUSED(closure))
{
    uint64_t max;
    if (!value) {
        PyErr_SetString(PyExc_AttributeError,
                        "property 'max_fragments' of 'ReassemblyBuffer' object has no deleter");
        return -1;
    }
    if (check_offset(str_max_fragments, value, &max) < 0)
        return -1;
    RA(self)->max_fragments = max;
    return 0;
}

static PyObject *ra_get_fragments(PyObject *self, void *Py_UNUSED(closure))
{
    return PyLong_FromUnsignedLongLong(RA(self)->fragments);
}

static PyObject *ra_get_readable(PyObject *self, void *Py_UNUSED(closure))
{
    return PyLong_FromUnsignedLongLong(RA(self)->readable);
}

static PyObject *ra_get_read_offset(PyObject *self, void *Py_UNUSED(closure))
{
    return PyLong_FromUnsignedLongLong(RA(self)->read_offset);
}

static PyObject *ra_get_highest_offset(PyObject *self, void *Py_UNUSED(closure))
{
    return PyLong_FromUnsignedLongLong(RA(self)->highest_offset);
}

static PyObject *ra_get_final_size(PyObject *self, void *Py_UNUSED(closure))
{
    qr_reasm *ra = RA(self);
    if (!ra->has_final)
        Py_RETURN_NONE;
    return PyLong_FromUnsignedLongLong(ra->final_size);
}

static PyObject *ra_get_finished(PyObject *self, void *Py_UNUSED(closure))
{
    qr_reasm *ra = RA(self);
    return PyBool_FromLong(ra->has_final && ra->read_offset == ra->final_size);
}

static PyObject *ra_get_buffered(PyObject *self, void *Py_UNUSED(closure))
{
    return PyLong_FromUnsignedLongLong(RA(self)->buffered);
}

static PyMethodDef ra_methods[] = {
    {"insert", (PyCFunction)(void (*)(void))ra_insert, FASTCALL_KW,
     PyDoc_STR("Store ``data`` at ``offset``; returns how much ``highest_offset`` grew.")},
    {"read", (PyCFunction)(void (*)(void))ra_read, FASTCALL_KW,
     PyDoc_STR("Up to ``max_bytes`` (all when negative) contiguous bytes from "
               "``read_offset``.")},
    {"set_final_size", (PyCFunction)(void (*)(void))ra_set_final_size, FASTCALL_KW,
     PyDoc_STR("Learn the final size without data (RESET_STREAM); same checks as a FIN.")},
    {"memory", ra_memory, METH_NOARGS,
     PyDoc_STR("Bytes allocated by the C buffer (C-only diagnostic).")},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef ra_getset[] = {
    {"max_offset", ra_get_max_offset, ra_set_max_offset, NULL, NULL},
    {"readable", ra_get_readable, NULL, NULL, NULL},
    {"read_offset", ra_get_read_offset, NULL, NULL, NULL},
    {"highest_offset", ra_get_highest_offset, NULL, NULL, NULL},
    {"final_size", ra_get_final_size, NULL, NULL, NULL},
    {"finished", ra_get_finished, NULL, NULL, NULL},
    {"buffered", ra_get_buffered, NULL, NULL, NULL},
    {"max_fragments", ra_get_max_fragments, ra_set_max_fragments, NULL, NULL},
    {"fragments", ra_get_fragments, NULL, NULL, NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot ra_slots[] = {
    {Py_tp_doc, "Receive side of one stream: out-of-order inserts, in-order reads, final size "
                "checks."},
    {Py_tp_new, ra_new},
    {Py_tp_dealloc, ra_dealloc},
    {Py_tp_methods, ra_methods},
    {Py_tp_getset, ra_getset},
    {0, NULL},
};

static char ra_name[200];

/* Not garbage-collected: it holds no Python objects. */
static PyType_Spec ra_spec = {
    ra_name,
    sizeof(ReasmObject),
    0,
    Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_IMMUTABLETYPE,
    ra_slots,
};

/* ------------------------------------------------------------ PacketCipher */

/* AES-GCM packet protection of one key generation (aead.c does the crypto).  seal and
 * open return exactly what quicish.wire.protection.PacketProtector's Python path
 * returns, and raise the same exceptions, except that open returns None where that
 * raises DecryptionError (PacketProtector raises it). */
typedef struct {
    PyObject_HEAD
    qr_pc pc;
} PacketCipherObject;

#define PC(op) (&((PacketCipherObject *)(op))->pc)

/* A bytes-like argument: bytes directly (view->obj left NULL), else a contiguous
 * buffer (PyBuffer_Release it when view->obj is set).  -1 with an exception. */
static int get_data(PyObject *o, Py_buffer *view, const uint8_t **data, Py_ssize_t *len)
{
    view->obj = NULL;
    if (PyBytes_CheckExact(o)) {
        *data = (const uint8_t *)PyBytes_AS_STRING(o);
        *len = PyBytes_GET_SIZE(o);
        return 0;
    }
    if (PyObject_GetBuffer(o, view, PyBUF_SIMPLE) < 0)
        return -1;
    *data = view->buf;
    *len = view->len;
    return 0;
}

static void put_data(Py_buffer *view)
{
    if (view->obj)
        PyBuffer_Release(view);
}

/* The packet number as the 12 big-endian bytes that protection.py XORs with the iv
 * ((iv ^ pn).to_bytes(12, "big")): any int in [0, 2^96), else OverflowError (a
 * negative or too large int) or TypeError. */
static int get_pn12(PyObject *o, uint8_t *pn12)
{
    unsigned long long v;
    PyObject *b;
    int i;
    if (PyLong_Check(o)) {
        v = PyLong_AsUnsignedLongLong(o);
        if (v != (unsigned long long)-1 || !PyErr_Occurred()) {
            memset(pn12, 0, 4);
            for (i = 11; i >= 4; i--, v >>= 8)
                pn12[i] = (uint8_t)v;
            return 0;
        }
        if (!PyErr_ExceptionMatches(PyExc_OverflowError))
            return -1;
        PyErr_Clear();
        /* negative, or 2^64 and above: int.to_bytes gives Python's own answer */
        b = PyObject_CallMethod(o, "to_bytes", "is", QR_PC_IV_SIZE, "big");
        if (!b)
            return -1;
        memcpy(pn12, PyBytes_AS_STRING(b), QR_PC_IV_SIZE);
        Py_DECREF(b);
        return 0;
    }
    PyErr_Format(PyExc_TypeError, "packet number must be an int, not %.100s",
                 Py_TYPE(o)->tp_name);
    return -1;
}

static PyObject *pc_crypto_error(const char *what)
{
    PyErr_Format(PyExc_RuntimeError, "PacketCipher: libcrypto failed to %s", what);
    return NULL;
}

static PyObject *pc_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"key", "iv", "hp_key", NULL};
    Py_buffer key, iv, hp;
    PyObject *self = NULL;
    int r;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "y*y*y*:PacketCipher", kwlist, &key, &iv, &hp))
        return NULL;
    if ((key.len != 16 && key.len != 32) || hp.len != key.len || iv.len != QR_PC_IV_SIZE) {
        PyErr_SetString(PyExc_ValueError,
                        "PacketCipher: key and hp_key must be both 16 or both 32 bytes, iv 12");
    } else if (qr_pc_load() != QR_OK) {
        PyErr_Format(PyExc_ImportError, "PacketCipher: libcrypto is not available (%s)",
                     qr_pc_load_error());
    } else if ((self = type->tp_alloc(type, 0)) != NULL) {
        r = qr_pc_init(PC(self), key.buf, (size_t)key.len, iv.buf, hp.buf);
        if (r != QR_OK) {
            Py_CLEAR(self);
            pc_crypto_error("set up the key");
        }
    }
    PyBuffer_Release(&key);
    PyBuffer_Release(&iv);
    PyBuffer_Release(&hp);
    return self;
}

static void pc_dealloc(PyObject *op)
{
    PyTypeObject *tp = Py_TYPE(op);
    qr_pc_release(PC(op));
    tp->tp_free(op);
    Py_DECREF(tp);
}

#define PC_MAX_LEN (INT_MAX - 64) /* EVP takes int lengths */

static PyObject *pc_seal(PyObject *self, PyObject *const *args, Py_ssize_t nargs,
                         PyObject *kwnames)
{
    static const char *const names[] = {"header", "payload", "pn"};
    PyObject *a[3], *out = NULL;
    Py_buffer hv, pv;
    const uint8_t *h, *p;
    Py_ssize_t hlen, plen;
    uint8_t pn12[QR_PC_IV_SIZE];
    int r;
    PARSE("PacketCipher.seal", names, 3, 3, a);
    if (get_data(a[0], &hv, &h, &hlen) < 0)
        return NULL;
    pv.obj = NULL;
    /* the order of protection.py's checks: header[0], the nonce, the payload, the sample */
    if (hlen == 0) {
        PyErr_SetString(PyExc_IndexError, "index out of range");
        goto done;
    }
    if (get_pn12(a[2], pn12) < 0 || get_data(a[1], &pv, &p, &plen) < 0)
        goto done;
    if (plen < 3 - (h[0] & 0x03)) {
        PyErr_SetString(PyExc_ValueError, "payload too short for the header protection sample");
        goto done;
    }
    if (hlen > PC_MAX_LEN || plen > PC_MAX_LEN - hlen) {
        PyErr_SetString(PyExc_OverflowError, "PacketCipher: packet too long");
        goto done;
    }
    out = PyBytes_FromStringAndSize(NULL, hlen + plen + QR_PC_TAG_SIZE);
    if (!out)
        goto done;
    r = qr_pc_seal(PC(self), pn12, h, (size_t)hlen, p, (size_t)plen,
                   (uint8_t *)PyBytes_AS_STRING(out));
    if (r != QR_OK) {
        Py_CLEAR(out);
        if (r == QR_EOVERFLOW)
            PyErr_SetString(PyExc_OverflowError, "int too big to convert");
        else
            pc_crypto_error("seal a packet");
    }
done:
    put_data(&hv);
    put_data(&pv);
    return out;
}

/* RFC 9000 A.3 with Python ints, as protection.py, for a largest_pn outside
 * [-2^62, 2^62] (or not an exact int): the full packet number, or NULL. */
static PyObject *pc_decode_pn_slow(PyObject *largest, uint32_t truncated, unsigned pn_len)
{
    long long win = 1LL << (8 * pn_len);
    PyObject *one = NULL, *expected = NULL, *o_win = NULL, *o_hwin = NULL, *o_nwin = NULL;
    PyObject *o_trunc = NULL, *o_max = NULL, *pn = NULL, *t = NULL, *limit = NULL;
    PyObject *result = NULL;
    int c;
    if (!(one = PyLong_FromLong(1)) || !(expected = PyNumber_Add(largest, one)) ||
        !(o_win = PyLong_FromLongLong(win)) || !(o_hwin = PyLong_FromLongLong(win >> 1)) ||
        !(o_nwin = PyLong_FromLongLong(-win)) ||
        !(o_trunc = PyLong_FromUnsignedLong(truncated)) ||
        !(o_max = PyLong_FromLongLong((long long)QR_VALUE_MAX)))
        goto done;
    if (!(t = PyNumber_And(expected, o_nwin)) || !(pn = PyNumber_Or(t, o_trunc)))
        goto done;
    Py_CLEAR(t);
    if (!(limit = PyNumber_Subtract(expected, o_hwin)))
        goto done;
    if ((c = PyObject_RichCompareBool(pn, limit, Py_LE)) < 0)
        goto done;
    Py_CLEAR(limit);
    if (c) {
        if (!(limit = PyNumber_Subtract(o_max, o_win)) ||
            (c = PyObject_RichCompareBool(pn, limit, Py_LT)) < 0)
            goto done;
        if (c) {
            if (!(t = PyNumber_Add(pn, o_win)))
                goto done;
            Py_SETREF(pn, t);
            t = NULL;
        }
    } else {
        if (!(limit = PyNumber_Add(expected, o_hwin)) ||
            (c = PyObject_RichCompareBool(pn, limit, Py_GT)) < 0)
            goto done;
        if (c && (c = PyObject_RichCompareBool(pn, o_win, Py_GE)) < 0)
            goto done;
        if (c) {
            if (!(t = PyNumber_Subtract(pn, o_win)))
                goto done;
            Py_SETREF(pn, t);
            t = NULL;
        }
    }
    result = pn;
    pn = NULL;
done:
    Py_XDECREF(one);
    Py_XDECREF(expected);
    Py_XDECREF(o_win);
    Py_XDECREF(o_hwin);
    Py_XDECREF(o_nwin);
    Py_XDECREF(o_trunc);
    Py_XDECREF(o_max);
    Py_XDECREF(pn);
    Py_XDECREF(t);
    Py_XDECREF(limit);
    return result;
}

static PyObject *pc_open(PyObject *self, PyObject *const *args, Py_ssize_t nargs,
                         PyObject *kwnames)
{
    static const char *const names[] = {"packet", "pn_offset", "largest_pn"};
    PyObject *a[3], *header = NULL, *payload = NULL, *pn_obj = NULL, *result = NULL;
    Py_buffer view;
    const uint8_t *pkt;
    Py_ssize_t len, ctlen;
    long long off, largest, pn;
    int overflow, r;
    uint8_t first, pn12[QR_PC_IV_SIZE], *hp;
    uint32_t truncated;
    unsigned pn_len, i;
    PARSE("PacketCipher.open", names, 3, 3, a);
    if (get_data(a[0], &view, &pkt, &len) < 0)
        return NULL;
    off = PyLong_AsLongLongAndOverflow(a[1], &overflow);
    if (off == -1 && PyErr_Occurred())
        goto done;
    if (overflow || off < 1 || len < QR_PC_SAMPLE_SIZE + 4 || off > len - QR_PC_SAMPLE_SIZE - 4) {
        result = Py_NewRef(Py_None); /* too short to sample */
        goto done;
    }
    if (len > PC_MAX_LEN) {
        PyErr_SetString(PyExc_OverflowError, "PacketCipher: packet too long");
        goto done;
    }
    if (qr_pc_unprotect(PC(self), pkt, (size_t)off, &first, &truncated, &pn_len) != QR_OK) {
        pc_crypto_error("remove header protection");
        goto done;
    }
    header = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)off + pn_len);
    if (!header)
        goto done;
    hp = (uint8_t *)PyBytes_AS_STRING(header);
    hp[0] = first;
    memcpy(hp + 1, pkt + 1, (size_t)off - 1);
    for (i = 0; i < pn_len; i++)
        hp[off + i] = (uint8_t)(truncated >> (8 * (pn_len - 1 - i)));
    largest = PyLong_CheckExact(a[2]) ? PyLong_AsLongLongAndOverflow(a[2], &overflow) : 0;
    if (PyLong_CheckExact(a[2]) && !overflow && largest >= -(long long)QR_VALUE_MAX &&
        largest <= (long long)QR_VALUE_MAX) {
        pn = qr_pn_decode(largest, truncated, pn_len);
        if (pn < 0) {
            PyErr_SetString(PyExc_OverflowError, "can't convert negative int to unsigned");
            goto done;
        }
        for (i = 0; i < 4; i++)
            pn12[i] = 0;
        for (i = 0; i < 8; i++)
            pn12[11 - i] = (uint8_t)((unsigned long long)pn >> (8 * i));
        if (!(pn_obj = PyLong_FromLongLong(pn)))
            goto done;
    } else {
        if (PyErr_Occurred())
            goto done;
        if (!(pn_obj = pc_decode_pn_slow(a[2], truncated, pn_len)) || get_pn12(pn_obj, pn12) < 0)
            goto done;
    }
    ctlen = len - (Py_ssize_t)off - (Py_ssize_t)pn_len; /* >= 16: the sample is in it */
    payload = PyBytes_FromStringAndSize(NULL, ctlen - QR_PC_TAG_SIZE);
    if (!payload)
        goto done;
    r = qr_pc_open(PC(self), pn12, hp, (size_t)off + pn_len, pkt + off + pn_len, (size_t)ctlen,
                   (uint8_t *)PyBytes_AS_STRING(payload));
    if (r == QR_EAUTH) {
        result = Py_NewRef(Py_None);
    } else if (r != QR_OK) {
        pc_crypto_error("open a packet");
    } else if ((result = PyTuple_New(3)) != NULL) {
        PyTuple_SET_ITEM(result, 0, header);
        PyTuple_SET_ITEM(result, 1, payload);
        PyTuple_SET_ITEM(result, 2, pn_obj);
        header = payload = pn_obj = NULL;
    }
done:
    put_data(&view);
    Py_XDECREF(header);
    Py_XDECREF(payload);
    Py_XDECREF(pn_obj);
    return result;
}

static PyObject *pc_mask(PyObject *self, PyObject *sample)
{
    Py_buffer view;
    const uint8_t *s;
    Py_ssize_t len;
    uint8_t mask[QR_PC_SAMPLE_SIZE];
    int r;
    if (get_data(sample, &view, &s, &len) < 0)
        return NULL;
    r = len == QR_PC_SAMPLE_SIZE ? qr_pc_mask(PC(self), s, mask) : QR_EINVAL;
    put_data(&view);
    if (r == QR_EINVAL) {
        PyErr_SetString(PyExc_ValueError, "header protection sample must be 16 bytes");
        return NULL;
    }
    if (r != QR_OK)
        return pc_crypto_error("compute a header protection mask");
    return PyBytes_FromStringAndSize((const char *)mask, 5);
}

static PyObject *pc_available(PyObject *Py_UNUSED(cls), PyObject *Py_UNUSED(ignored))
{
    return PyBool_FromLong(qr_pc_load() == QR_OK);
}

static PyObject *pc_load_error(PyObject *Py_UNUSED(cls), PyObject *Py_UNUSED(ignored))
{
    const char *s;
    qr_pc_load();
    s = qr_pc_load_error();
    return s ? PyUnicode_DecodeUTF8(s, (Py_ssize_t)strlen(s), "replace") : Py_NewRef(Py_None);
}

static PyObject *pc_backend(PyObject *Py_UNUSED(cls), PyObject *Py_UNUSED(ignored))
{
    const char *s;
    qr_pc_load();
    s = qr_pc_backend();
    return s ? PyUnicode_DecodeUTF8(s, (Py_ssize_t)strlen(s), "replace") : Py_NewRef(Py_None);
}

static PyMethodDef pc_methods[] = {
    {"seal", (PyCFunction)(void (*)(void))pc_seal, FASTCALL_KW,
     PyDoc_STR("seal(header, payload, pn) -> bytes: the protected packet (header + ciphertext "
               "+ tag), as PacketProtector.seal_packet.")},
    {"open", (PyCFunction)(void (*)(void))pc_open, FASTCALL_KW,
     PyDoc_STR("open(packet, pn_offset, largest_pn) -> (plain_header, payload, pn) or None "
               "when the packet is too short to sample or fails authentication.")},
    {"mask", pc_mask, METH_O,
     PyDoc_STR("mask(sample) -> bytes: the 5-byte header protection mask of a 16-byte "
               "sample.")},
    {"available", pc_available, METH_NOARGS | METH_STATIC,
     PyDoc_STR("True when libcrypto loaded and passed its known-answer tests (loads it on "
               "first call).")},
    {"load_error", pc_load_error, METH_NOARGS | METH_STATIC,
     PyDoc_STR("Why libcrypto could not be used, or None.")},
    {"backend", pc_backend, METH_NOARGS | METH_STATIC,
     PyDoc_STR("The libcrypto loaded and its version, or None.")},
    {NULL, NULL, 0, NULL},
};

static PyType_Slot pc_slots[] = {
    {Py_tp_doc, "PacketCipher(key, iv, hp_key): QUIC AES-GCM packet protection (RFC 9001 "
                "section 5) of one key, in C over the system libcrypto.\n\n"
                "key and hp_key: 16 (AES-128-GCM) or 32 (AES-256-GCM) bytes; iv: 12 bytes. "
                "ImportError when libcrypto is not available."},
    {Py_tp_new, pc_new},
    {Py_tp_dealloc, pc_dealloc},
    {Py_tp_methods, pc_methods},
    {0, NULL},
};

static char pc_name[200];

/* Not garbage-collected: it holds no Python objects. */
static PyType_Spec pc_spec = {
    pc_name,
    sizeof(PacketCipherObject),
    0,
    Py_TPFLAGS_DEFAULT | Py_TPFLAGS_IMMUTABLETYPE,
    pc_slots,
};

/* ------------------------------------------------------------------ export */

static int intern(PyObject **slot, const char *s)
{
    if (!*slot)
        *slot = PyUnicode_InternFromString(s);
    return *slot ? 0 : -1;
}

static int export_types(const char *module_name, const char *type_module, const char *pure_name)
{
    PyObject *pure, *mod = NULL, *bases = NULL, *rs_type = NULL, *ra_type = NULL;
    PyObject *pc_type = NULL;
    int i, ret = -1;
    if (!(pure = PyImport_ImportModule(pure_name)))
        return -1;
    for (i = 0; i < F_COUNT; i++) {
        PyObject *o = PyObject_GetAttrString(pure, pure_names[i]);
        if (!o)
            goto done;
        Py_XSETREF(pure_obj[i], o);
    }
    if (!PyType_Check(pure_obj[F_ABSTRACT_RANGE_SET])) {
        PyErr_Format(PyExc_TypeError, "%s.AbstractRangeSet is not a class", pure_name);
        goto done;
    }
    if (intern(&str_ranges, "ranges") < 0 || intern(&str_offset, "offset") < 0 ||
        intern(&str_final_size, "final size") < 0 || intern(&str_max_offset, "max_offset") < 0 ||
        intern(&str_max_fragments, "max_fragments") < 0)
        goto done;
    if (!int_one && !(int_one = PyLong_FromLong(1)))
        goto done;
    /* The type names give __module__ (the public module) and __qualname__. */
    if ((size_t)snprintf(rs_name, sizeof(rs_name), "%s.RangeSet", type_module) >=
            sizeof(rs_name) ||
        (size_t)snprintf(ra_name, sizeof(ra_name), "%s.ReassemblyBuffer", type_module) >=
            sizeof(ra_name) ||
        (size_t)snprintf(pc_name, sizeof(pc_name), "%s.PacketCipher", type_module) >=
            sizeof(pc_name)) {
        PyErr_SetString(PyExc_ValueError, "module name too long");
        goto done;
    }
    if (!(bases = PyTuple_Pack(1, pure_obj[F_ABSTRACT_RANGE_SET])))
        goto done;
    if (!(rs_type = PyType_FromSpecWithBases(&rs_spec, bases)))
        goto done;
    if (!(ra_type = PyType_FromSpec(&ra_spec)))
        goto done;
    if (!(pc_type = PyType_FromSpec(&pc_spec)))
        goto done;
    if (!(mod = PyImport_ImportModule(module_name)))
        goto done;
    if (PyModule_AddObjectRef(mod, "RangeSet", rs_type) < 0 ||
        PyModule_AddObjectRef(mod, "ReassemblyBuffer", ra_type) < 0 ||
        PyModule_AddObjectRef(mod, "PacketCipher", pc_type) < 0)
        goto done;
    ret = 0;
done:
    Py_DECREF(pure);
    Py_XDECREF(mod);
    Py_XDECREF(bases);
    Py_XDECREF(rs_type);
    Py_XDECREF(ra_type);
    Py_XDECREF(pc_type);
    return ret;
}

/* Declared to cffi (build_core.py) and called through the module's `lib` once:
 * creates RangeSet and ReassemblyBuffer, named type_module.RangeSet etc., on top of
 * the module pure_name, and sets them as attributes of the extension module
 * module_name (already imported: it is the caller).  Returns NULL, or a message
 * describing the Python exception that stopped it (cleared: a cffi function cannot
 * raise).  cffi's wrapper releases the GIL around the call (build_core.py), so this
 * function must take it back itself (PyGILState_Ensure) before using the C API. */
const char *qr_export_types(const char *module_name, const char *type_module,
                            const char *pure_name);

const char *qr_export_types(const char *module_name, const char *type_module,
                            const char *pure_name)
{
    static char message[512];
    const char *result = NULL;
    PyGILState_STATE gil = PyGILState_Ensure();
    if (export_types(module_name, type_module, pure_name) < 0) {
        PyObject *value, *text = NULL;
        const char *s = NULL;
#if PY_VERSION_HEX >= 0x030C0000
        value = PyErr_GetRaisedException();
#else
        PyObject *type, *tb;
        PyErr_Fetch(&type, &value, &tb);
        PyErr_NormalizeException(&type, &value, &tb);
        Py_XDECREF(type);
        Py_XDECREF(tb);
#endif
        if (value && (text = PyObject_Str(value)))
            s = PyUnicode_AsUTF8(text);
        snprintf(message, sizeof(message), "%s: %s", value ? Py_TYPE(value)->tp_name : "error",
                 s ? s : "?");
        PyErr_Clear();
        Py_XDECREF(text);
        Py_XDECREF(value);
        result = message;
    }
    PyGILState_Release(gil);
    return result;
}
