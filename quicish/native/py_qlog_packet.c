/* packet_record: a qlog packet event's whole JSON-SEQ record from the packet's payload.
 *
 * The trace logs a packet that is not bulk (an ACK-only packet, an ACK with STREAM data,
 * a PING...) by decoding its payload into compact frames, which the writer renders at its
 * next flush (quicish.proto.trace, quicish.qlog.render).  For the frames such packets hold
 * in a transfer (PADDING, PING, ACK, CRYPTO, STREAM, HANDSHAKE_DONE) this does both in one
 * C call: it reads the frames and writes the record (time, name, header, frames, size)
 * with the bytes the Python path writes (quicish.native.pure_qlog.packet_record, the
 * twin, holds the same bytes; tests/test_qlog_packet.py compares the three).  It returns
 * None, and the trace takes its Python path, for anything else: another frame type, a
 * STREAM frame with FIN or of a stream not logged as open (the trace logs its state), a
 * malformed frame, an ACK delay whose milliseconds are not exact, an odd argument.
 *
 * acked_record does the same for a packets_acked event from the acknowledged packets (the
 * loss recovery's SentPacket objects): their numbers read in C, not listed in Python.
 * metrics_record does it for a recovery_metrics_updated event: the engine's metrics dict
 * (RTTs in seconds) written as what changed since the writer's last one (kept, in
 * milliseconds, in its dict `last`), as quicish.qlog.render.render_metrics_delta writes it.
 */
#include "pytypes.h"

#include <math.h>
#include <string.h>

#include <structmember.h>

typedef struct {
    char *p;
    Py_ssize_t len, cap;
} Buf;

static int buf_room(Buf *b, Py_ssize_t need)
{
    char *p;
    Py_ssize_t cap;
    if (b->len + need <= b->cap)
        return 0;
    cap = 2 * (b->len + need);
    if (!(p = PyMem_Realloc(b->p, (size_t)cap))) {
        PyErr_NoMemory();
        return -1;
    }
    b->p = p;
    b->cap = cap;
    return 0;
}

#define ADD(b, lit) (memcpy((b)->p + (b)->len, (lit), sizeof(lit) - 1), (b)->len += sizeof(lit) - 1)

static void add_int(Buf *b, unsigned long long v)
{
    char tmp[24], *q = tmp + sizeof(tmp);
    do {
        *--q = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    memcpy(b->p + b->len, q, (size_t)(tmp + sizeof(tmp) - q));
    b->len += tmp + sizeof(tmp) - q;
}

/* A QUIC varint at *p (before end): 0 with *v, -1 when truncated. */
static int varint(const unsigned char **p, const unsigned char *end, unsigned long long *v)
{
    const unsigned char *q = *p;
    int n, i;
    if (q >= end)
        return -1;
    n = 1 << (q[0] >> 6);
    if (end - q < n)
        return -1;
    *v = q[0] & 0x3F;
    for (i = 1; i < n; i++)
        *v = (*v << 8) | q[i];
    *p = q + n;
    return 0;
}

/* A str of [a-z0-9_:] (nothing JSON escapes) as UTF-8, or NULL (no exception). */
static const char *plain_str(PyObject *o, Py_ssize_t *n)
{
    const char *s;
    Py_ssize_t i;
    if (!PyUnicode_CheckExact(o) || !PyUnicode_IS_ASCII(o))
        return NULL;
    s = (const char *)PyUnicode_DATA(o);
    *n = PyUnicode_GET_LENGTH(o);
    for (i = 0; i < *n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == ':' ||
              (c >= 'A' && c <= 'Z')))
            return NULL;
    }
    return s;
}

#define VALUE_MAX (1ULL << 62)

/* The frames of payload[0:n] as the data's "frames" list at b's end: 1, 0 for a frame this
 * does not take, -1 with an exception. */
static int put_frames(Buf *b, const unsigned char *p, const unsigned char *end, int exponent,
                      PyObject *streams)
{
    unsigned long long v[6];
    int first = 1;
    while (p < end) {
        unsigned t = p[0];
        if (buf_room(b, 160) < 0)
            return -1;
        if (!first)
            ADD(b, ",");
        first = 0;
        p++;
        if (t == 0x00) { /* a run of PADDING: one frame */
            const unsigned char *q = p;
            while (q < end && !*q)
                q++;
            ADD(b, "{\"frame_type\":\"padding\",\"raw\":{\"length\":");
            add_int(b, (unsigned long long)(q - p + 1));
            ADD(b, ",\"payload_length\":");
            add_int(b, (unsigned long long)(q - p + 1));
            ADD(b, "}}");
            p = q;
        } else if (t == 0x01) {
            ADD(b, "{\"frame_type\":\"ping\"}");
        } else if (t == 0x1e) {
            ADD(b, "{\"frame_type\":\"handshake_done\"}");
        } else if (t == 0x02 || t == 0x03) { /* largest, delay, count, first, ranges, ECN */
            unsigned long long largest, smallest, count, i, k;
            char *text;
            if (varint(&p, end, &largest) || varint(&p, end, &v[0]) || varint(&p, end, &count) ||
                varint(&p, end, &v[1]) || v[1] > largest)
                return 0;
            smallest = largest - v[1];
            ADD(b, "{\"frame_type\":\"ack\",\"acked_ranges\":[");
            for (i = 0;; i++) {
                if (buf_room(b, 64) < 0)
                    return -1;
                b->p[b->len++] = '[';
                add_int(b, smallest);
                if (largest != smallest) {
                    b->p[b->len++] = ',';
                    add_int(b, largest);
                }
                b->p[b->len++] = ']';
                if (i == count)
                    break;
                b->p[b->len++] = ',';
                if (varint(&p, end, &v[2]) || varint(&p, end, &v[3]) || v[2] + 2 > smallest ||
                    v[3] > smallest - v[2] - 2)
                    return 0;
                largest = smallest - v[2] - 2;
                smallest = largest - v[3];
            }
            /* delay * 2**exponent / 1000 in ms, as Python computes it: exact below 2**53 */
            if (v[0] >> (53 - exponent))
                return 0;
            k = v[0] << exponent;
            if (!(text = PyOS_double_to_string((double)k / 1000.0, 'r', 0, Py_DTSF_ADD_DOT_0,
                                               NULL)))
                return -1;
            if (buf_room(b, (Py_ssize_t)strlen(text) + 128) < 0) {
                PyMem_Free(text);
                return -1;
            }
            ADD(b, "],\"ack_delay\":");
            memcpy(b->p + b->len, text, strlen(text));
            b->len += (Py_ssize_t)strlen(text);
            PyMem_Free(text);
            if (t == 0x03) {
                if (varint(&p, end, &v[0]) || varint(&p, end, &v[1]) || varint(&p, end, &v[2]))
                    return 0;
                ADD(b, ",\"ect0\":");
                add_int(b, v[0]);
                ADD(b, ",\"ect1\":");
                add_int(b, v[1]);
                ADD(b, ",\"ce\":");
                add_int(b, v[2]);
            }
            ADD(b, "}");
        } else if (t == 0x06) { /* CRYPTO: offset, length, data */
            if (varint(&p, end, &v[0]) || varint(&p, end, &v[1]) ||
                v[0] + v[1] >= VALUE_MAX || v[1] > (unsigned long long)(end - p))
                return 0;
            p += v[1];
            ADD(b, "{\"frame_type\":\"crypto\",\"offset\":");
            add_int(b, v[0]);
            ADD(b, ",\"raw\":{\"length\":");
            add_int(b, v[1]);
            ADD(b, "}}");
        } else if (t >= 0x08 && t <= 0x0f && !(t & 0x01)) { /* STREAM without FIN */
            PyObject *sid;
            int known;
            v[1] = 0;
            if (varint(&p, end, &v[0]) || ((t & 0x04) && varint(&p, end, &v[1])))
                return 0;
            if (t & 0x02) {
                if (varint(&p, end, &v[2]) || v[2] > (unsigned long long)(end - p))
                    return 0;
            } else {
                v[2] = (unsigned long long)(end - p);
            }
            if (v[1] + v[2] >= VALUE_MAX)
                return 0;
            p += v[2];
            if (!(sid = PyLong_FromUnsignedLongLong(v[0])))
                return -1;
            known = PySet_Contains(streams, sid);
            Py_DECREF(sid);
            if (known <= 0)
                return known; /* (not logged as open yet: the trace logs its state) */
            ADD(b, "{\"frame_type\":\"stream\",\"stream_id\":");
            add_int(b, v[0]);
            ADD(b, ",\"offset\":");
            add_int(b, v[1]);
            ADD(b, ",\"fin\":false,\"raw\":{\"length\":");
            add_int(b, v[2]);
            ADD(b, "}}");
        } else {
            return 0;
        }
    }
    return first ? 0 : 1; /* (no frame: the decoder's error, on the Python path) */
}

/* An exact int in [0, 2**62): 1 with *v, else 0 (no exception). */
static int exact_u62(PyObject *o, unsigned long long *v)
{
    int overflow;
    long long x;
    if (!PyLong_CheckExact(o))
        return 0;
    x = PyLong_AsLongLongAndOverflow(o, &overflow);
    if (overflow || x < 0 || (unsigned long long)x >= VALUE_MAX)
        return 0;
    *v = (unsigned long long)x;
    return 1;
}

/* packet_record(start, now, name, packet_type, pn, size, payload, ack_exponent, streams) */
static PyObject *packet_record(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    const char *name, *ptype;
    Py_ssize_t name_n, ptype_n, time_n;
    unsigned long long pn, size;
    long exponent;
    double start, now;
    char time_buf[24], *time_text = NULL;
    Py_buffer view;
    Buf b = {NULL, 0, 0};
    PyObject *result = NULL;
    int ok;
    (void)module;
    if (nargs != 9) {
        PyErr_SetString(PyExc_TypeError, "packet_record() takes 9 arguments");
        return NULL;
    }
    if (!PyFloat_CheckExact(args[0]) || !PyFloat_CheckExact(args[1]) ||
        !(name = plain_str(args[2], &name_n)) || !(ptype = plain_str(args[3], &ptype_n)) ||
        !exact_u62(args[4], &pn) || !exact_u62(args[5], &size) || !PyLong_CheckExact(args[7]) ||
        !PySet_Check(args[8]) || !memchr(name, ':', (size_t)name_n))
        Py_RETURN_NONE;
    exponent = PyLong_AsLong(args[7]);
    if (exponent < 0 || exponent > 20) {
        PyErr_Clear();
        Py_RETURN_NONE;
    }
    start = PyFloat_AS_DOUBLE(args[0]);
    now = PyFloat_AS_DOUBLE(args[1]);
    if (PyObject_GetBuffer(args[6], &view, PyBUF_SIMPLE) < 0)
        return NULL;
    if (buf_room(&b, 256 + name_n + ptype_n + 64) < 0)
        goto done;
    if (!(time_n = qr_qlog_time(time_buf, now, start))) { /* (as the writer's "%.3f") */
        double ms = (now - start) * 1000.0;
        if (!(time_text = PyOS_double_to_string(ms > 0.0 ? ms : 0.0, 'f', 3, 0, NULL)))
            goto done;
        time_n = (Py_ssize_t)strlen(time_text);
        if (buf_room(&b, time_n) < 0)
            goto done;
    }
    ADD(&b, "\x1e{\"time\":");
    memcpy(b.p + b.len, time_text ? time_text : time_buf, (size_t)time_n);
    b.len += time_n;
    ADD(&b, ",\"name\":\"");
    memcpy(b.p + b.len, name, (size_t)name_n);
    b.len += name_n;
    ADD(&b, "\",\"data\":{\"header\":{\"packet_type\":\"");
    memcpy(b.p + b.len, ptype, (size_t)ptype_n);
    b.len += ptype_n;
    ADD(&b, "\",\"packet_number\":");
    add_int(&b, pn);
    ADD(&b, "},\"frames\":[");
    ok = put_frames(&b, (const unsigned char *)view.buf,
                    (const unsigned char *)view.buf + view.len, (int)exponent, args[8]);
    if (ok < 0)
        goto done;
    if (!ok) {
        result = Py_NewRef(Py_None);
        goto done;
    }
    if (buf_room(&b, 64) < 0)
        goto done;
    ADD(&b, "],\"raw\":{\"length\":");
    add_int(&b, size);
    ADD(&b, "}}}\n");
    result = PyBytes_FromStringAndSize(b.p, b.len);
done:
    PyBuffer_Release(&view);
    PyMem_Free(time_text);
    PyMem_Free(b.p);
    return result;
}

/* The time's text ("%.3f" of ms after start, 0.000 before it) at b's end: 0 or -1. */
static int put_time(Buf *b, double now, double start)
{
    char *text;
    Py_ssize_t n;
    if (buf_room(b, 24) < 0)
        return -1;
    if ((n = qr_qlog_time(b->p + b->len, now, start))) {
        b->len += n;
        return 0;
    }
    double ms = (now - start) * 1000.0;
    if (!(text = PyOS_double_to_string(ms > 0.0 ? ms : 0.0, 'f', 3, 0, NULL)))
        return -1;
    n = (Py_ssize_t)strlen(text);
    if (buf_room(b, n) == 0) {
        memcpy(b->p + b->len, text, (size_t)n);
        b->len += n;
    }
    PyMem_Free(text);
    return PyErr_Occurred() ? -1 : 0;
}

/* `pn` of a SentPacket: its slot read in place (the type's, looked up once), else by name.
 * A new reference, or NULL with an exception. */
static PyObject *s_pn;
static PyTypeObject *pn_type; /* (a strong reference: its slot's offset is pn_offset) */
static Py_ssize_t pn_offset = -1;

static PyObject *get_pn(PyObject *o)
{
    PyObject *v;
    if (Py_TYPE(o) != pn_type) {
        PyObject *d = _PyType_Lookup(Py_TYPE(o), s_pn);
        Py_XSETREF(pn_type, (PyTypeObject *)Py_NewRef(Py_TYPE(o)));
        pn_offset = -1;
        if (d && Py_IS_TYPE(d, &PyMemberDescr_Type)) {
            PyMemberDef *m = ((PyMemberDescrObject *)d)->d_member;
            if (m->type == T_OBJECT_EX && !(m->flags & PY_AUDIT_READ))
                pn_offset = m->offset;
        }
    }
    if (pn_offset >= 0 && (v = *(PyObject **)((char *)o + pn_offset)))
        return Py_NewRef(v);
    return PyObject_GetAttr(o, s_pn);
}

/* acked_record(start, now, name, space, acked) */
static PyObject *acked_record(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    const char *name, *space;
    Py_ssize_t name_n, space_n, i, n;
    unsigned long long pn;
    Buf b = {NULL, 0, 0};
    PyObject *acked, *v, *result = NULL;
    int ok;
    (void)module;
    if (nargs != 5) {
        PyErr_SetString(PyExc_TypeError, "acked_record() takes 5 arguments");
        return NULL;
    }
    if (!s_pn && !(s_pn = PyUnicode_InternFromString("pn")))
        return NULL;
    acked = args[4];
    if (!PyFloat_CheckExact(args[0]) || !PyFloat_CheckExact(args[1]) ||
        !(name = plain_str(args[2], &name_n)) || !memchr(name, ':', (size_t)name_n) ||
        !(space = plain_str(args[3], &space_n)) || !PyList_CheckExact(acked))
        Py_RETURN_NONE;
    n = PyList_GET_SIZE(acked);
    if (buf_room(&b, 160 + name_n + space_n + n * 21) < 0)
        goto done;
    ADD(&b, "\x1e{\"time\":");
    if (put_time(&b, PyFloat_AS_DOUBLE(args[1]), PyFloat_AS_DOUBLE(args[0])) < 0 ||
        buf_room(&b, 160 + name_n + space_n + n * 21) < 0)
        goto done;
    ADD(&b, ",\"name\":\"");
    memcpy(b.p + b.len, name, (size_t)name_n);
    b.len += name_n;
    ADD(&b, "\",\"data\":{\"packet_number_space\":\"");
    memcpy(b.p + b.len, space, (size_t)space_n);
    b.len += space_n;
    ADD(&b, "\",\"packet_numbers\":[");
    /* (the list's size is read each time: reading a pn may run Python code) */
    for (i = 0; i < PyList_GET_SIZE(acked) && i < n; i++) {
        PyObject *item = Py_NewRef(PyList_GET_ITEM(acked, i));
        v = get_pn(item);
        Py_DECREF(item);
        if (!v)
            goto done;
        ok = exact_u62(v, &pn);
        Py_DECREF(v);
        if (!ok) {
            result = Py_NewRef(Py_None);
            goto done;
        }
        if (i)
            b.p[b.len++] = ',';
        add_int(&b, pn);
    }
    if (i != PyList_GET_SIZE(acked)) { /* (the list changed meanwhile) */
        result = Py_NewRef(Py_None);
        goto done;
    }
    ADD(&b, "]}}\n");
    result = PyBytes_FromStringAndSize(b.p, b.len);
done:
    PyMem_Free(b.p);
    return result;
}

/* ---- metrics_record ------------------------------------------------------------------ */

/* qlog.schema's RTT_METRICS (floats, seconds -> ms), COUNT_METRICS (ints), then pacing_rate
 * (bytes/s -> bits/s): the order of the event's members. */
#define N_RTT 4
#define N_METRICS 10
static const char *const metric_names[N_METRICS] = {
    "min_rtt",   "smoothed_rtt",      "latest_rtt", "rtt_variance",      "pto_count",
    "congestion_window", "bytes_in_flight", "ssthresh", "packets_in_flight", "pacing_rate"};
static PyObject *metric_keys[N_METRICS];

#define LL_BOUND 9223372036854775808.0 /* 2^63 */

/* A metric's new value for the event: 1 (changed: *ms or *n, set), 0 (absent, not finite or
 * unchanged), -1 with TypeError for a value this does not take (the writer then renders in
 * Python). */
static int metric_value(int i, PyObject *v, PyObject *old, double *ms, long long *n)
{
    double d;
    int overflow;
    if (!v || v == Py_None)
        return 0;
    if (PyFloat_CheckExact(v)) {
        d = PyFloat_AS_DOUBLE(v);
    } else if (PyLong_CheckExact(v)) {
        if (i >= N_RTT) { /* int(value) is the int; int(rate * 8), exact below 2^60 */
            *n = PyLong_AsLongLongAndOverflow(v, &overflow);
            if (overflow)
                goto odd;
            if (i == N_METRICS - 1) {
                if (*n <= -((long long)1 << 60) || *n >= ((long long)1 << 60))
                    goto odd;
                *n *= 8;
            }
            goto count;
        }
        d = PyLong_AsDouble(v);
        if (d == -1.0 && PyErr_Occurred()) {
            PyErr_Clear();
            goto odd;
        }
    } else {
        goto odd;
    }
    if (!isfinite(d))
        return 0;
    if (i < N_RTT) {
        *ms = d * 1000.0;
        if (!old)
            return 1;
        if (!PyFloat_CheckExact(old))
            goto odd;
        return PyFloat_AS_DOUBLE(old) != *ms;
    }
    if (i == N_METRICS - 1)
        d *= 8.0;
    if (!(d >= -LL_BOUND && d < LL_BOUND))
        goto odd;
    *n = (long long)d;
count:
    if (!old)
        return 1;
    if (!PyLong_CheckExact(old))
        goto odd;
    {
        long long was = PyLong_AsLongLongAndOverflow(old, &overflow);
        if (overflow)
            goto odd;
        return was != *n;
    }
odd:
    PyErr_Format(PyExc_TypeError, "metrics_record: %s not taken", metric_names[i]);
    return -1;
}

/* metrics_record(start, now, name, metrics, last) */
static PyObject *metrics_record(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    const char *name;
    Py_ssize_t name_n;
    PyObject *metrics, *last, *v, *old, *result = NULL, *stored;
    double ms[N_METRICS];
    long long n[N_METRICS];
    int changed[N_METRICS], i, any = 0;
    char *text;
    Buf b = {NULL, 0, 0};
    (void)module;
    if (nargs != 5) {
        PyErr_SetString(PyExc_TypeError, "metrics_record() takes 5 arguments");
        return NULL;
    }
    if (!metric_keys[0])
        for (i = 0; i < N_METRICS; i++)
            if (!(metric_keys[i] = PyUnicode_InternFromString(metric_names[i])))
                return NULL;
    metrics = args[3], last = args[4];
    if (!PyFloat_CheckExact(args[0]) || !PyFloat_CheckExact(args[1]) ||
        !(name = plain_str(args[2], &name_n)) || !memchr(name, ':', (size_t)name_n) ||
        !PyDict_CheckExact(metrics) || !PyDict_CheckExact(last)) {
        PyErr_SetString(PyExc_TypeError, "metrics_record: odd arguments");
        return NULL;
    }
    /* every value read and checked before `last` changes (a dict lookup of an interned str
     * key runs no Python code) */
    for (i = 0; i < N_METRICS; i++) {
        if (!(v = PyDict_GetItemWithError(metrics, metric_keys[i])) && PyErr_Occurred())
            return NULL;
        if (!(old = PyDict_GetItemWithError(last, metric_keys[i])) && PyErr_Occurred())
            return NULL;
        if ((changed[i] = metric_value(i, v, old, &ms[i], &n[i])) < 0)
            return NULL;
        any |= changed[i];
    }
    if (!any)
        Py_RETURN_NONE;
    if (buf_room(&b, 128 + name_n) < 0)
        return NULL;
    ADD(&b, "\x1e{\"time\":");
    if (put_time(&b, PyFloat_AS_DOUBLE(args[1]), PyFloat_AS_DOUBLE(args[0])) < 0 ||
        buf_room(&b, 64 + name_n) < 0)
        goto done;
    ADD(&b, ",\"name\":\"");
    memcpy(b.p + b.len, name, (size_t)name_n);
    b.len += name_n;
    ADD(&b, "\",\"data\":{");
    for (i = 0, any = 0; i < N_METRICS; i++) {
        Py_ssize_t key_n = (Py_ssize_t)strlen(metric_names[i]);
        if (!changed[i])
            continue;
        if (i < N_RTT) { /* repr(ms), as float.__repr__ */
            if (!(text = PyOS_double_to_string(ms[i], 'r', 0, Py_DTSF_ADD_DOT_0, NULL)))
                goto done;
            stored = PyFloat_FromDouble(ms[i]);
        } else {
            text = NULL;
            stored = PyLong_FromLongLong(n[i]);
        }
        if (!stored || PyDict_SetItem(last, metric_keys[i], stored) < 0 ||
            buf_room(&b, key_n + 32 + (text ? (Py_ssize_t)strlen(text) : 0)) < 0) {
            Py_XDECREF(stored);
            PyMem_Free(text);
            goto done;
        }
        Py_DECREF(stored);
        if (any++)
            b.p[b.len++] = ',';
        b.p[b.len++] = '"';
        memcpy(b.p + b.len, metric_names[i], (size_t)key_n);
        b.len += key_n;
        ADD(&b, "\":");
        if (text) {
            memcpy(b.p + b.len, text, strlen(text));
            b.len += (Py_ssize_t)strlen(text);
            PyMem_Free(text);
        } else if (n[i] < 0) {
            b.p[b.len++] = '-';
            add_int(&b, 0ULL - (unsigned long long)n[i]);
        } else {
            add_int(&b, (unsigned long long)n[i]);
        }
    }
    if (buf_room(&b, 8) < 0)
        goto done;
    ADD(&b, "}}\n");
    result = PyBytes_FromStringAndSize(b.p, b.len);
done:
    PyMem_Free(b.p);
    return result;
}

PyMethodDef qr_qlog_packet_methods[] = {
    {"acked_record", (PyCFunction)(void (*)(void))acked_record, METH_FASTCALL,
     PyDoc_STR("acked_record(start, now, name, space, acked) -> bytes | None\n\n"
               "A packets_acked event's record from the acknowledged packets' pn, or None.")},
    {"packet_record", (PyCFunction)(void (*)(void))packet_record, METH_FASTCALL,
     PyDoc_STR("packet_record(start, now, name, packet_type, pn, size, payload, ack_exponent, "
               "streams) -> bytes | None\n\n"
               "A packet event's JSON-SEQ record from its payload, or None for a packet "
               "the trace logs in Python.")},
    {"metrics_record", (PyCFunction)(void (*)(void))metrics_record, METH_FASTCALL,
     PyDoc_STR("metrics_record(start, now, name, metrics, last) -> bytes | None\n\n"
               "A recovery_metrics_updated event's record of what changed since `last` "
               "(updated), or None when nothing did; TypeError for values it does not take.")},
    {NULL, NULL, 0, NULL},
};
