/* render_stream_packets: qlog's bulk packet events as JSON-SEQ text, in one C call.
 *
 * quicish.qlog.writer buffers each packet that is one STREAM frame as a 9-tuple
 * (time, name, packet_type, packet_number, stream_id, offset, fin, length, size) and
 * renders a run of them at flush time.  This is the C form of the pure twin's
 * render_stream_packets (quicish.native.pure): the same bytes for the same records
 * (test_qlog_native.py compares them), the time written as "%.3f" of milliseconds after
 * `start` (negative ones as 0.000), rounded as Python's % rounds (put_ms, else
 * PyOS_double_to_string, what % calls).
 *
 * It reads only exact values, so no Python code runs during the call (the list cannot
 * change under it): a float or int time, str names, ints in the int64 range, a bool or
 * int fin.  Anything else raises TypeError (OverflowError for a bigger int) and the
 * writer renders those records in Python instead.
 */
#include "pytypes.h"

#include <string.h>

typedef struct {
    PyObject *bytes; /* the output, grown with _PyBytes_Resize */
    Py_ssize_t len;
} Out;

/* Room for `need` more bytes: 0, or -1 with an exception (out->bytes then NULL). */
static int reserve(Out *out, Py_ssize_t need)
{
    Py_ssize_t cap = PyBytes_GET_SIZE(out->bytes);
    if (out->len + need <= cap)
        return 0;
    if (need > PY_SSIZE_T_MAX / 2 - out->len) {
        PyErr_NoMemory();
        return -1;
    }
    cap = 2 * (out->len + need);
    return _PyBytes_Resize(&out->bytes, cap);
}

#define PUT(out, s, n)                                                      \
    do {                                                                    \
        memcpy(PyBytes_AS_STRING((out)->bytes) + (out)->len, (s), (n));    \
        (out)->len += (n);                                                  \
    } while (0)
#define PUT_LIT(out, lit) PUT(out, lit, sizeof(lit) - 1)

/* The decimal digits of v (at most 20 and a sign) at out's end; room reserved. */
static void put_int(Out *out, long long v)
{
    char tmp[24];
    char *p = tmp + sizeof(tmp);
    unsigned long long u = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;
    do {
        *--p = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0)
        *--p = '-';
    PUT(out, p, (Py_ssize_t)(tmp + sizeof(tmp) - p));
}

/* An int field: 0 with *v, or -1 with TypeError / OverflowError. */
static int get_int(PyObject *o, long long *v)
{
    int overflow;
    if (!PyLong_Check(o)) {
        PyErr_Format(PyExc_TypeError, "qlog record: an int expected, got %.100s",
                     Py_TYPE(o)->tp_name);
        return -1;
    }
    *v = PyLong_AsLongLongAndOverflow(o, &overflow);
    if (overflow) {
        PyErr_SetString(PyExc_OverflowError, "qlog record: int out of the int64 range");
        return -1;
    }
    return *v == -1 && PyErr_Occurred() ? -1 : 0;
}

/* A str field as UTF-8 (borrowed, cached by the str): NULL with TypeError. */
static const char *get_str(PyObject *o, Py_ssize_t *n)
{
    if (!PyUnicode_Check(o)) {
        PyErr_Format(PyExc_TypeError, "qlog record: a str expected, got %.100s",
                     Py_TYPE(o)->tp_name);
        return NULL;
    }
    return PyUnicode_AsUTF8AndSize(o, n);
}

/* "%.3f" of ms (>= 0) at buf, its length; 0 when ms is too large or too near a rounding
 * tie for this short cut, which the caller then leaves to PyOS_double_to_string.  Below
 * 2^30 ms, ms * 1000 is within 2^-14 of the exact product, so away from a tie (by
 * 2^-10) its integer rounding is the exact value's. */
static Py_ssize_t put_ms(char *buf, double ms)
{
    const double margin = 1.0 / 1024;
    double y, frac;
    long long n;
    char tmp[24];
    char *p = tmp + sizeof(tmp);
    int i;
    if (!(ms < 1073741824.0))
        return 0;
    y = ms * 1000.0;
    n = (long long)y;
    frac = y - (double)n;
    if (frac > 0.5 + margin)
        n += 1;
    else if (frac >= 0.5 - margin)
        return 0;
    for (i = 0; i < 3; i++) {
        *--p = (char)('0' + n % 10);
        n /= 10;
    }
    *--p = '.';
    do {
        *--p = (char)('0' + n % 10);
        n /= 10;
    } while (n);
    memcpy(buf, p, (size_t)(tmp + sizeof(tmp) - p));
    return (Py_ssize_t)(tmp + sizeof(tmp) - p);
}

/* One record at out's end: 0, or -1 with an exception. */
static int put_record(Out *out, PyObject *rec, double start)
{
    PyObject *const *f;
    const char *name, *ptype;
    char *time_text = NULL, time_buf[24];
    Py_ssize_t name_len, ptype_len, time_len;
    long long ints[5]; /* packet_number, stream_id, offset, length, size */
    static const int at[5] = {3, 4, 5, 7, 8};
    double now, ms;
    int fin, i, ret, overflow;
    if (!PyTuple_Check(rec) || PyTuple_GET_SIZE(rec) != 9) {
        PyErr_SetString(PyExc_TypeError, "qlog record: a 9-tuple expected");
        return -1;
    }
    f = &PyTuple_GET_ITEM(rec, 0);
    if (PyFloat_Check(f[0])) {
        now = PyFloat_AS_DOUBLE(f[0]);
    } else if (PyLong_Check(f[0])) {
        now = PyLong_AsDouble(f[0]);
        if (now == -1.0 && PyErr_Occurred())
            return -1;
    } else {
        PyErr_Format(PyExc_TypeError, "qlog record: a float time expected, got %.100s",
                     Py_TYPE(f[0])->tp_name);
        return -1;
    }
    if (!(name = get_str(f[1], &name_len)) || !(ptype = get_str(f[2], &ptype_len)))
        return -1;
    for (i = 0; i < 5; i++)
        if (get_int(f[at[i]], &ints[i]) < 0)
            return -1;
    if (PyBool_Check(f[6])) {
        fin = f[6] == Py_True;
    } else if (PyLong_Check(f[6])) {
        long long v = PyLong_AsLongLongAndOverflow(f[6], &overflow);
        if (v == -1 && !overflow && PyErr_Occurred())
            return -1;
        fin = v != 0 || overflow != 0;
    } else {
        PyErr_Format(PyExc_TypeError, "qlog record: a bool fin expected, got %.100s",
                     Py_TYPE(f[6])->tp_name);
        return -1;
    }
    ms = (now - start) * 1000.0;
    if (!(ms > 0.0))
        ms = 0.0;
    time_len = put_ms(time_buf, ms);
    if (!time_len) {
        if (!(time_text = PyOS_double_to_string(ms, 'f', 3, 0, NULL)))
            return -1;
        time_len = (Py_ssize_t)strlen(time_text);
    }
    /* the template's text (under 256 bytes), the strings, 5 ints of up to 21 characters */
    ret = reserve(out, 256 + time_len + name_len + ptype_len + 5 * 21);
    if (ret == 0) {
        PUT_LIT(out, "\x1e{\"time\":");
        PUT(out, time_text ? time_text : time_buf, time_len);
        PUT_LIT(out, ",\"name\":\"");
        PUT(out, name, name_len);
        PUT_LIT(out, "\",\"data\":{\"header\":{\"packet_type\":\"");
        PUT(out, ptype, ptype_len);
        PUT_LIT(out, "\",\"packet_number\":");
        put_int(out, ints[0]);
        PUT_LIT(out, "},\"frames\":[{\"frame_type\":\"stream\",\"stream_id\":");
        put_int(out, ints[1]);
        PUT_LIT(out, ",\"offset\":");
        put_int(out, ints[2]);
        if (fin)
            PUT_LIT(out, ",\"fin\":true,\"raw\":{\"length\":");
        else
            PUT_LIT(out, ",\"fin\":false,\"raw\":{\"length\":");
        put_int(out, ints[3]);
        PUT_LIT(out, "}}],\"raw\":{\"length\":");
        put_int(out, ints[4]);
        PUT_LIT(out, "}}}\n");
    }
    if (time_text)
        PyMem_Free(time_text);
    return ret;
}

static PyObject *render_stream_packets(PyObject *module, PyObject *const *args, Py_ssize_t nargs,
                                       PyObject *kwnames)
{
    static const char *const names[] = {"records", "start", "lo", "hi"};
    PyObject *a[4], *records;
    Py_ssize_t lo, hi, i;
    double start;
    Out out;
    PARSE("render_stream_packets", names, 4, 4, a);
    records = a[0];
    if (!PyList_Check(records)) {
        PyErr_SetString(PyExc_TypeError, "render_stream_packets: records must be a list");
        return NULL;
    }
    start = PyFloat_AsDouble(a[1]);
    if (start == -1.0 && PyErr_Occurred())
        return NULL;
    lo = PyNumber_AsSsize_t(a[2], PyExc_OverflowError);
    if (lo == -1 && PyErr_Occurred())
        return NULL;
    hi = PyNumber_AsSsize_t(a[3], PyExc_OverflowError);
    if (hi == -1 && PyErr_Occurred())
        return NULL;
    /* (PyFloat_AsDouble and __index__ may run Python code: the size is read after them) */
    if (lo < 0 || lo > hi || hi > PyList_GET_SIZE(records)) {
        PyErr_Format(PyExc_IndexError, "render_stream_packets: [%zd, %zd) not within %zd records",
                     lo, hi, PyList_GET_SIZE(records));
        return NULL;
    }
    out.len = 0;
    out.bytes = PyBytes_FromStringAndSize(NULL, (hi - lo) * 240 + 64);
    if (!out.bytes)
        return NULL;
    for (i = lo; i < hi; i++) {
        if (put_record(&out, PyList_GET_ITEM(records, i), start) < 0) {
            Py_XDECREF(out.bytes);
            return NULL;
        }
    }
    if (_PyBytes_Resize(&out.bytes, out.len) < 0)
        return NULL;
    return out.bytes;
}

PyMethodDef qr_qlog_methods[] = {
    {"render_stream_packets", (PyCFunction)(void (*)(void))render_stream_packets, FASTCALL_KW,
     PyDoc_STR("render_stream_packets(records, start, lo, hi) -> bytes\n\n"
               "The JSON-SEQ records of qlog stream packets records[lo:hi].")},
    {NULL, NULL, 0, NULL},
};
