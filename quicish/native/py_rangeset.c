/* RangeSet as a CPython extension type over rangeset.c (see pytypes.h).
 *
 * Behaves exactly as the pure-Python twin's RangeSet (quicish.native.pure): same
 * results, same exceptions and messages (test_native_differential.py compares them), and
 * it subclasses the twin's AbstractRangeSet (isinstance, == across implementations).
 */
#include "pytypes.h"

typedef struct {
    PyObject_HEAD
    qr_rangeset rs;
    PyObject *max_ranges; /* the int given, as an exact int */
} RangeSetObject;

#define RS(op) (&((RangeSetObject *)(op))->rs)

/* The ValueError of `not 0 <= start < stop <= 2**62`. */
static PyObject *range_error(PyObject *start, PyObject *stop)
{
    PyErr_Format(PyExc_ValueError, "invalid range [%S, %S): need 0 <= start < stop <= 2**62",
                 start, stop);
    return NULL;
}

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
        return range_error(a[0], a[1]);
    kt = get_u64(a[1], &stop);
    if (kt == V_ERR)
        return NULL;
    if (ks != V_OK || kt != V_OK)
        return range_error(a[0], a[1]);
    r = subtract ? qr_rs_subtract(RS(self), start, stop) : qr_rs_add(RS(self), start, stop);
    if (r == QR_OK)
        Py_RETURN_NONE;
    if (r == QR_ENOMEM)
        return rs_memory_error();
    return range_error(a[0], a[1]);
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
    PyObject *a[1], *stop, *one;
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
    if (!(one = PyLong_FromLong(1)))
        return NULL;
    stop = PyNumber_Add(a[0], one);
    Py_DECREF(one);
    if (stop) {
        range_error(a[0], stop);
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

/* The twin's ack_frame_error: -1 with the exception set for invalid arguments, checked
 * in its order (max_ranges, delay, ecn, then an empty set), else 0. */
static int ack_args_error(int empty, PyObject *delay, PyObject *ecn, PyObject *max_ranges)
{
    PyObject *counts, *count;
    uint64_t v;
    Py_ssize_t i;
    int k;
    if (!PyLong_Check(max_ranges)) {
        PyErr_Format(PyExc_TypeError, "max_ranges must be an int, got %R", max_ranges);
        return -1;
    }
    k = get_u64(max_ranges, &v);
    if (k == V_NEG || (k == V_OK && v < 1)) {
        PyErr_Format(PyExc_ValueError, "max_ranges must be >= 1, got %S", max_ranges);
        return -1;
    }
    if (!PyLong_Check(delay)) {
        PyErr_Format(PyExc_TypeError, "ACK delay must be an int, got %R", delay);
        return -1;
    }
    if (get_u64(delay, &v) != V_OK || v > QR_VARINT_MAX) {
        PyErr_Format(PyExc_ValueError, "ACK delay %S does not fit in a QUIC varint", delay);
        return -1;
    }
    if (ecn != Py_None) {
        k = PyObject_IsInstance(ecn, qr_iterable);
        if (k < 0)
            return -1;
        if (!(counts = k ? PySequence_Tuple(ecn) : PyTuple_New(0)))
            return -1;
        if (PyTuple_GET_SIZE(counts) != 3) {
            PyErr_Format(PyExc_TypeError,
                         "ecn must be None or 3 counts (ECT(0), ECT(1), CE), got %R", ecn);
            Py_DECREF(counts);
            return -1;
        }
        for (i = 0; i < 3; i++) {
            count = PyTuple_GET_ITEM(counts, i);
            if (!PyLong_Check(count)) {
                PyErr_Format(PyExc_TypeError, "ECN count must be an int, got %R", count);
                break;
            }
            if (get_u64(count, &v) != V_OK || v > QR_VARINT_MAX) {
                PyErr_Format(PyExc_ValueError, "ECN count %S does not fit in a QUIC varint",
                             count);
                break;
            }
        }
        Py_DECREF(counts);
        if (i < 3)
            return -1;
    }
    if (empty) {
        PyErr_SetString(PyExc_ValueError, "ACK needs at least one range");
        return -1;
    }
    return 0;
}

/* Anything but an int delay, an exact tuple of 3 int counts (or None) and an int
 * max_ranges on a non-empty set: ack_args_error decides, then the valid remainder
 * (e.g. ecn as a list or another iterable, bools) is converted here. */
static PyObject *rs_ack_frame_slow(PyObject *self, PyObject *delay_o, PyObject *ecn_o,
                                   PyObject *max_o)
{
    PyObject *counts = NULL, *result = NULL;
    uint64_t delay, max, ecn[3];
    int i;
    if (ecn_o != Py_None) {
        /* Read once: ecn may be a one-shot iterator (which ack_args_error then gets as
         * this tuple; any other ecn it gets as given, for the twin's exact message). */
        counts = PySequence_Tuple(ecn_o);
        if (!counts) {
            if (!PyErr_ExceptionMatches(PyExc_TypeError))
                return NULL;
            PyErr_Clear(); /* not iterable: ack_args_error reports it */
        }
    }
    if (ack_args_error(RS(self)->len == 0, delay_o,
                       counts && PyIter_Check(ecn_o) ? counts : ecn_o, max_o) < 0)
        goto done;
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
inconsistent: /* ack_args_error accepted what this file rejects: a bug */
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
    return qr_u64_pair(rs->b[0], rs->b[2 * rs->len - 1]);
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
        PyObject *pair = qr_u64_pair(rs->b[2 * j], rs->b[2 * j + 1]);
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

/* The twin's AbstractRangeSet.__eq__: equal ranges() for any AbstractRangeSet. */
static PyObject *rs_richcompare(PyObject *self, PyObject *other, int op)
{
    PyObject *mine, *theirs, *result;
    int r;
    if (op != Py_EQ && op != Py_NE)
        Py_RETURN_NOTIMPLEMENTED;
    r = PyObject_IsInstance(other, qr_abstract_range_set);
    if (r < 0)
        return NULL;
    if (!r)
        Py_RETURN_NOTIMPLEMENTED;
    if (!(mine = rs_list(self, 0)))
        return NULL;
    theirs = PyObject_CallMethodNoArgs(other, qr_str_ranges);
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

/* Garbage-collected because its base, the twin's AbstractRangeSet (a class statement), is. */
PyType_Spec qr_rs_spec = {
    qr_rs_name,
    sizeof(RangeSetObject),
    0,
    Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_IMMUTABLETYPE,
    rs_slots,
};

char qr_rs_name[QR_TYPE_NAME_SIZE];
