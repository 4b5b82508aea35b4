/* ReassemblyBuffer as a CPython extension type over reassembly.c (see pytypes.h).
 *
 * Behaves exactly as the pure-Python twin's ReassemblyBuffer (quicish.native.pure): same
 * results, and the same exceptions with the same messages (ValueError for a bad offset,
 * quicish.errors.ProtocolError with the QUIC code for what a peer did wrong).
 */
#include "pytypes.h"

typedef struct {
    PyObject_HEAD
    qr_reasm ra;
} ReasmObject;

#define RA(op) (&((ReasmObject *)(op))->ra)

/* The ValueError of a bad offset argument called `name`. */
static void offset_error(const char *name, PyObject *value)
{
    PyErr_Format(PyExc_ValueError, "%s must be an int in [0, 2**62], got %R", name, value);
}

/* The twin's check_offset: an int in [0, 2^62], else its offset error. */
static int check_offset(const char *name, PyObject *value, uint64_t *out)
{
    if (PyLong_Check(value) && get_u64(value, out) == V_OK && *out <= QR_VALUE_MAX)
        return 0;
    offset_error(name, value);
    return -1;
}

static PyObject *ra_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"max_offset", NULL};
    PyObject *arg, *self;
    uint64_t max;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O:ReassemblyBuffer", kwlist, &arg))
        return NULL;
    if (check_offset("max_offset", arg, &max) < 0)
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

/* The exception for a negative qr_ra_insert result, end = offset + len as the twin
 * computes it (an int beyond 64 bits for a huge offset). */
static PyObject *ra_error(PyObject *self, int64_t code, PyObject *offset, Py_ssize_t len)
{
    qr_reasm *ra = RA(self);
    PyObject *n, *end;
    unsigned long long other;
    if (code == QR_EFRAGMENTS)
        return qr_raise_protocol(QR_PROTOCOL_VIOLATION,
                                 "%llu out-of-order fragments exceed the limit of %llu",
                                 (unsigned long long)ra->fragments,
                                 (unsigned long long)ra->max_fragments);
    if (code != QR_EFLOW && code != QR_EFINAL_CHANGED && code != QR_EFINAL_BEYOND &&
        code != QR_EFINAL_BELOW) {
        PyErr_SetString(PyExc_MemoryError, "ReassemblyBuffer");
        return NULL;
    }
    if (!(n = PyLong_FromSsize_t(len)))
        return NULL;
    end = PyNumber_Add(offset, n);
    Py_DECREF(n);
    if (!end)
        return NULL;
    switch (code) {
    case QR_EFLOW:
        other = ra->max_offset;
        qr_raise_protocol(QR_FLOW_CONTROL_ERROR,
                          "data up to offset %S exceeds the flow-control limit %llu", end, other);
        break;
    case QR_EFINAL_CHANGED:
        other = ra->final_size;
        qr_raise_protocol(QR_FINAL_SIZE_ERROR, "final size changed from %llu to %S", other, end);
        break;
    case QR_EFINAL_BEYOND:
        other = ra->final_size;
        qr_raise_protocol(QR_FINAL_SIZE_ERROR, "data up to offset %S beyond final size %llu",
                          end, other);
        break;
    default:
        other = ra->highest_offset;
        qr_raise_protocol(QR_FINAL_SIZE_ERROR,
                          "final size %S below highest received offset %llu", end, other);
        break;
    }
    Py_DECREF(end);
    return NULL;
}

/* An offset argument: V_OK (offset set), V_BIG (offset set to 2^62 + 1: the true value
 * fails the same checks, and errors are reported with the true value), or NULL returned
 * with the offset error (negative) or a TypeError. */
static int get_offset(const char *name, PyObject *o, uint64_t *offset)
{
    int k = get_u64(o, offset);
    if (k == V_NEG) {
        offset_error(name, o);
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
    if (get_offset("offset", a[0], &offset) == V_ERR)
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
    if (get_offset("final size", a[0], &size) == V_ERR)
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
    if (check_offset("max_offset", value, &max) < 0)
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
    if (check_offset("max_fragments", value, &max) < 0)
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

/* Not garbage-collected: it holds no Python objects. */
PyType_Spec qr_ra_spec = {
    qr_ra_name,
    sizeof(ReasmObject),
    0,
    Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_IMMUTABLETYPE,
    ra_slots,
};

char qr_ra_name[QR_TYPE_NAME_SIZE];
