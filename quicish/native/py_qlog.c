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
 * writer renders those records in Python instead.  The trace's C tap (QlogTap) is in
 * py_qlog_tap.c.
 */
#include "pytypes.h"

#include <stdint.h>
#include <string.h>

typedef QrOut Out; /* the output, grown with _PyBytes_Resize */

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

static const char digit_pairs[] = "0001020304050607080910111213141516171819202122232425262728293031"
                                  "3233343536373839404142434445464748495051525354555657585960616263"
                                  "6465666768697071727374757677787980818283848586878889909192939495"
                                  "96979899";

/* The digits of u (unsigned) ending at q (written from the end back, in place: no copy,
 * no call; the writer thread renders six numbers a packet). */
#define PUT_DIGITS(q, u)                                                                   \
    do {                                                                                   \
        while ((u) >= 100) {                                                               \
            unsigned r_ = (unsigned)((u) % 100);                                           \
            (u) /= 100;                                                                    \
            (q) -= 2;                                                                      \
            (q)[0] = digit_pairs[2 * r_];                                                  \
            (q)[1] = digit_pairs[2 * r_ + 1];                                              \
        }                                                                                  \
        if ((u) >= 10) {                                                                   \
            (q)[-2] = digit_pairs[2 * (u)];                                                \
            (q)[-1] = digit_pairs[2 * (u) + 1];                                            \
        } else {                                                                           \
            (q)[-1] = (char)('0' + (u));                                                   \
        }                                                                                  \
    } while (0)

/* How many decimal digits w has. */
static int digits32(uint32_t w)
{
    return w < 10 ? 1 : w < 100 ? 2 : w < 1000 ? 3 : w < 10000 ? 4 : w < 100000 ? 5
         : w < 1000000 ? 6 : w < 10000000 ? 7 : w < 100000000 ? 8 : w < 1000000000 ? 9 : 10;
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
    if (!(ms < 1073741824.0))
        return 0;
    y = ms * 1000.0;
    n = (long long)y;
    frac = y - (double)n;
    if (frac > 0.5 + margin)
        n += 1;
    else if (frac >= 0.5 - margin)
        return 0;
    {
        /* (below 2^30 ms: the whole milliseconds in 32 bits, written in place) */
        uint32_t w = (uint32_t)(n / 1000), f3 = (uint32_t)(n % 1000);
        int digits = digits32(w);
        char *q = buf + digits;
        PUT_DIGITS(q, w);
        q = buf + digits;
        q[0] = '.';
        q[1] = (char)('0' + f3 / 100);
        q[2] = digit_pairs[2 * (f3 % 100)];
        q[3] = digit_pairs[2 * (f3 % 100) + 1];
        return digits + 4;
    }
}

/* One record at out's end: 0, or -1 with an exception. */
int qr_qlog_put_record(Out *out, PyObject *rec, double start)
{
    PyObject *const *f;
    const char *name, *ptype;
    Py_ssize_t name_len, ptype_len;
    long long ints[5]; /* packet_number, stream_id, offset, length, size */
    static const int at[5] = {3, 4, 5, 7, 8};
    double now;
    int fin, i, overflow;
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
    return qr_qlog_put_fields(out, now, name, name_len, ptype, ptype_len, ints, fin, start,
                              NULL);
}

/* The decimal digits of v at p: the end. */
static char *put_digits(char *p, long long v)
{
    unsigned long long u = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v, t;
    char *q;
    int n = 1;
    if (v < 0)
        *p++ = '-';
    if (u <= 0xFFFFFFFFu) { /* (a packet's numbers: 32-bit arithmetic) */
        uint32_t w = (uint32_t)u;
        n = digits32(w);
        q = p + n;
        PUT_DIGITS(q, w);
        return p + n;
    }
    for (t = u; t >= 10; t /= 10)
        n++;
    q = p + n;
    PUT_DIGITS(q, u);
    return p + n;
}

#define LIT(p, lit) (memcpy((p), (lit), sizeof(lit) - 1), (p) + sizeof(lit) - 1)

char *qr_qlog_fill(char *p, const char *time_text, Py_ssize_t time_len, const char *name,
                   Py_ssize_t name_len, const char *ptype, Py_ssize_t ptype_len,
                   const long long ints[5], int fin)
{
    p = LIT(p, "\x1e{\"time\":");
    memcpy(p, time_text, (size_t)time_len);
    p = LIT(p + time_len, ",\"name\":\"");
    memcpy(p, name, (size_t)name_len);
    p = LIT(p + name_len, "\",\"data\":{\"header\":{\"packet_type\":\"");
    memcpy(p, ptype, (size_t)ptype_len);
    p = LIT(p + ptype_len, "\",\"packet_number\":");
    p = put_digits(p, ints[0]);
    p = LIT(p, "},\"frames\":[{\"frame_type\":\"stream\",\"stream_id\":");
    p = put_digits(p, ints[1]);
    p = LIT(p, ",\"offset\":");
    p = put_digits(p, ints[2]);
    if (fin)
        p = LIT(p, ",\"fin\":true,\"raw\":{\"length\":");
    else
        p = LIT(p, ",\"fin\":false,\"raw\":{\"length\":");
    p = put_digits(p, ints[3]);
    p = LIT(p, "}}],\"raw\":{\"length\":");
    p = put_digits(p, ints[4]);
    return LIT(p, "}}}\n");
}

Py_ssize_t qr_qlog_time(char *buf, double now, double start)
{
    double ms = (now - start) * 1000.0;
    return put_ms(buf, ms > 0.0 ? ms : 0.0);
}

/* With `save` the caller runs without the GIL (*save its thread state) and out has room
 * for QR_QLOG_ROOM(name_len, ptype_len) bytes (reserve then grows nothing): only a time
 * that put_ms leaves to PyOS_double_to_string takes the GIL back, for that call and the
 * room its longer text may need. */
int qr_qlog_put_fields(Out *out, double now, const char *name, Py_ssize_t name_len,
                       const char *ptype, Py_ssize_t ptype_len, const long long ints[5], int fin,
                       double start, PyThreadState **save)
{
    char *time_text = NULL, time_buf[24];
    Py_ssize_t time_len;
    double ms;
    int ret = 0;
    time_len = qr_qlog_time(time_buf, now, start);
    if (!time_len) {
        ms = (now - start) * 1000.0;
        if (!(ms > 0.0))
            ms = 0.0;
        if (save)
            PyEval_RestoreThread(*save);
        time_text = PyOS_double_to_string(ms, 'f', 3, 0, NULL);
        if (time_text) {
            time_len = (Py_ssize_t)strlen(time_text);
            ret = reserve(out, QR_QLOG_ROOM(name_len, ptype_len) + time_len);
        }
        if (save)
            *save = PyEval_SaveThread();
        if (!time_text)
            return -1;
    } else {
        ret = reserve(out, QR_QLOG_ROOM(name_len, ptype_len));
    }
    if (ret == 0) {
        char *base = PyBytes_AS_STRING(out->bytes);
        char *end = qr_qlog_fill(base + out->len, time_text ? time_text : time_buf, time_len,
                                 name, name_len, ptype, ptype_len, ints, fin);
        out->len = end - base;
    }
    if (time_text) {
        if (save)
            PyEval_RestoreThread(*save);
        PyMem_Free(time_text);
        if (save)
            *save = PyEval_SaveThread();
    }
    return ret;
}

static PyObject *render_stream_packets(PyObject *module, PyObject *const *args, Py_ssize_t nargs,
                                       PyObject *kwnames)
{
    static const char *const names[] = {"records", "start", "lo", "hi"};
    PyObject *a[4], *records;
    Py_ssize_t lo, hi, i, n;
    double start;
    int is_bulk;
    Out out;
    PARSE("render_stream_packets", names, 4, 4, a);
    records = a[0];
    is_bulk = qr_bulk_type && (PyObject *)Py_TYPE(records) == qr_bulk_type;
    if (!is_bulk && !PyList_Check(records)) {
        PyErr_SetString(PyExc_TypeError,
                        "render_stream_packets: records must be a list or BulkRecords");
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
    n = is_bulk ? qr_bulk_len(records) : PyList_GET_SIZE(records);
    if (lo < 0 || lo > hi || hi > n) {
        PyErr_Format(PyExc_IndexError, "render_stream_packets: [%zd, %zd) not within %zd records",
                     lo, hi, n);
        return NULL;
    }
    out.len = 0;
    out.bytes = PyBytes_FromStringAndSize(NULL, (hi - lo) * 240 + 64);
    if (!out.bytes)
        return NULL;
    if (is_bulk) {
        if (qr_bulk_render(records, &out, start, lo, hi, NULL) < 0) {
            Py_XDECREF(out.bytes);
            return NULL;
        }
    }
    for (i = lo; !is_bulk && i < hi; i++) {
        if (qr_qlog_put_record(&out, PyList_GET_ITEM(records, i), start) < 0) {
            Py_XDECREF(out.bytes);
            return NULL;
        }
    }
    if (_PyBytes_Resize(&out.bytes, out.len) < 0)
        return NULL;
    return out.bytes;
}

/* render_chunk(records, start, parts) -> bytes: a flush's text in one piece.  parts is a
 * list of bytes (copied as they are) and ints (each: the records from the previous int, or
 * 0, up to it).  For a BulkRecords of plain records (no odd one) the text is written with
 * the GIL released (the records marked busy meanwhile: no change, no detach), so other
 * Python threads run meanwhile. */
static PyObject *render_chunk(PyObject *module, PyObject *const *args, Py_ssize_t nargs,
                              PyObject *kwnames)
{
    static const char *const names[] = {"records", "start", "parts"};
    /* each part read once, with the GIL: text (bytes held by the tuple) or a run's end */
    typedef struct {
        const char *text;
        Py_ssize_t n;
    } Part;
    PyObject *a[3], *records, *parts = NULL, *item;
    Py_ssize_t i, n, nparts, room = 64, done = 0, end, bound = -1;
    PyThreadState *save = NULL;
    Part *seg = NULL;
    double start;
    int is_bulk, failed = 0;
    Out out;
    PARSE("render_chunk", names, 3, 3, a);
    records = a[0];
    is_bulk = qr_bulk_type && (PyObject *)Py_TYPE(records) == qr_bulk_type;
    if (!is_bulk && !PyList_Check(records)) {
        PyErr_SetString(PyExc_TypeError, "render_chunk: records must be a list or BulkRecords");
        return NULL;
    }
    start = PyFloat_AsDouble(a[1]);
    if (start == -1.0 && PyErr_Occurred())
        return NULL;
    if (!(parts = PySequence_Tuple(a[2]))) /* (a tuple: nothing changes it meanwhile) */
        return NULL;
    nparts = PyTuple_GET_SIZE(parts);
    if (!(seg = PyMem_Malloc(sizeof(Part) * (size_t)(nparts + 1)))) {
        PyErr_NoMemory();
        goto fail;
    }
    n = is_bulk ? qr_bulk_len(records) : PyList_GET_SIZE(records);
    for (i = 0; i < nparts; i++) {
        item = PyTuple_GET_ITEM(parts, i);
        if (PyBytes_CheckExact(item)) {
            seg[i].text = PyBytes_AS_STRING(item);
            seg[i].n = PyBytes_GET_SIZE(item);
            room += seg[i].n;
            continue;
        }
        if (!PyLong_CheckExact(item)) {
            PyErr_SetString(PyExc_TypeError, "render_chunk: parts must be bytes or ints");
            goto fail;
        }
        end = PyLong_AsSsize_t(item);
        if (end == -1 && PyErr_Occurred())
            goto fail;
        if (end < done || end > n) {
            PyErr_Format(PyExc_IndexError, "render_chunk: [%zd, %zd) not within %zd records",
                         done, end, n);
            goto fail;
        }
        seg[i].text = NULL;
        seg[i].n = end;
        room += (end - done) * 240;
        done = end;
    }
    if (is_bulk && (bound = qr_bulk_bound(records)) >= 0)
        room += bound; /* (then reserve grows nothing while the GIL is released) */
    out.len = 0;
    if (!(out.bytes = PyBytes_FromStringAndSize(NULL, room)))
        goto fail;
    if (bound >= 0) {
        qr_bulk_set_busy(records, 1);
        save = PyEval_SaveThread();
    }
    for (i = 0, done = 0; i < nparts && !failed; i++) {
        if (seg[i].text) {
            if (!save && reserve(&out, seg[i].n) < 0) {
                failed = 1;
                break;
            }
            PUT(&out, seg[i].text, seg[i].n);
            continue;
        }
        end = seg[i].n;
        if (is_bulk)
            failed = qr_bulk_render(records, &out, start, done, end, save ? &save : NULL) < 0;
        for (; !is_bulk && !failed && done < end; done++) {
            if (done >= PyList_GET_SIZE(records)) { /* (the list shrank: a record's code ran) */
                PyErr_SetString(PyExc_IndexError, "render_chunk: the records changed");
                failed = 1;
            } else {
                failed = qr_qlog_put_record(&out, PyList_GET_ITEM(records, done), start) < 0;
            }
        }
        done = end;
    }
    if (save) {
        PyEval_RestoreThread(save);
        qr_bulk_set_busy(records, 0);
    }
    PyMem_Free(seg);
    Py_DECREF(parts);
    if (failed) {
        Py_XDECREF(out.bytes);
        return NULL;
    }
    if (_PyBytes_Resize(&out.bytes, out.len) < 0)
        return NULL;
    return out.bytes;
fail:
    PyMem_Free(seg);
    Py_DECREF(parts);
    return NULL;
}

/* render_ints(ints) -> str: a list of exact ints in the int64 range as JSON's "1,2,3"
 * (no brackets): qlog's packets_acked lists, a few hundred numbers each. */
static PyObject *render_ints(PyObject *module, PyObject *list)
{
    Py_ssize_t i, n;
    long long v;
    char *buf, *p;
    PyObject *text;
    (void)module;
    if (!PyList_CheckExact(list)) {
        PyErr_SetString(PyExc_TypeError, "render_ints: a list expected");
        return NULL;
    }
    n = PyList_GET_SIZE(list);
    if (n > PY_SSIZE_T_MAX / 24 || !(buf = PyMem_Malloc((size_t)n * 21 + 1)))
        return PyErr_NoMemory();
    p = buf;
    for (i = 0; i < n; i++) {
        if (!qr_exact_ll(PyList_GET_ITEM(list, i), &v)) {
            PyMem_Free(buf);
            PyErr_SetString(PyExc_TypeError, "render_ints: int64 ints expected");
            return NULL;
        }
        if (i)
            *p++ = ',';
        p = put_digits(p, v);
    }
    text = PyUnicode_DecodeASCII(buf, p - buf, NULL);
    PyMem_Free(buf);
    return text;
}

PyMethodDef qr_qlog_methods[] = {
    {"render_ints", render_ints, METH_O,
     PyDoc_STR("render_ints(ints) -> str\n\nA list of int64 ints as JSON's 1,2,3.")},
    {"render_chunk", (PyCFunction)(void (*)(void))render_chunk, FASTCALL_KW,
     PyDoc_STR("render_chunk(records, start, parts) -> bytes\n\n"
               "A flush's text: parts' bytes, and for each int the records up to it.")},
    {"render_stream_packets", (PyCFunction)(void (*)(void))render_stream_packets, FASTCALL_KW,
     PyDoc_STR("render_stream_packets(records, start, lo, hi) -> bytes\n\n"
               "The JSON-SEQ records of qlog stream packets records[lo:hi].")},
    {NULL, NULL, 0, NULL},
};
