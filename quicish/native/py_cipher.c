/* PacketCipher as a CPython extension type over aead.c (see pytypes.h): AES-GCM packet
 * protection of one key, header protection included, over the system libcrypto (which
 * aead.c loads at first use).  seal and open return what quicish.wire.protection's
 * Python path returns and raise the same exceptions.
 */
#include "pytypes.h"

#include <limits.h>
#include <string.h>

#include "aead.h"
#include "burst.h"

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
        /* Never a received packet's: PacketProtector.open_packet takes the Python path. */
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_OverflowError,
                            "PacketCipher.open: largest_pn must be an int in [-2^62, 2^62]");
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

/* An int argument as int64 (-1 for None), or -1 with an exception set. */
static int get_i64(PyObject *o, int64_t *v)
{
    long long x;
    if (o == Py_None) {
        *v = -1;
        return 0;
    }
    x = PyLong_AsLongLong(o);
    if (x == -1 && PyErr_Occurred())
        return -1;
    *v = x;
    return 0;
}

static PyObject *pc_seal_stream_burst(PyObject *self, PyObject *const *args, Py_ssize_t nargs,
                                      PyObject *kwnames)
{
    static const char *const names[] = {
        "dcid",  "first",  "pn",    "largest_acked", "skip_pn", "datagram_size",
        "stream_id", "offset", "data", "final_size", "in_flight", "cwnd",
        "pacer", "now", "max_count"};
    PyObject *a[15], *packets = NULL, *lengths = NULL, *pkt, *n, *result = NULL;
    Py_buffer cv, dv;
    const uint8_t *dcid, *data;
    Py_ssize_t dcid_len, data_len;
    int64_t v;
    qr_burst b;
    int r;
    PARSE("PacketCipher.seal_stream_burst", names, 15, 15, a);
    memset(&b, 0, sizeof(b));
    if (get_data(a[0], &cv, &dcid, &dcid_len) < 0)
        return NULL;
    dv.obj = NULL;
    if (get_data(a[8], &dv, &data, &data_len) < 0)
        goto done;
    b.dcid = dcid;
    b.dcid_len = (size_t)dcid_len;
    b.data = data;
    if (get_i64(a[1], &v) < 0)
        goto done;
    b.first = (uint8_t)v;
    if (get_i64(a[2], &b.pn) < 0 || get_i64(a[3], &b.largest_acked) < 0 ||
        get_i64(a[4], &b.skip_pn) < 0 || get_i64(a[9], &b.final_size) < 0)
        goto done;
    if (get_i64(a[5], &v) < 0)
        goto done;
    b.datagram_size = v > 0 ? (size_t)v : 0;
    if (get_i64(a[6], &v) < 0)
        goto done;
    b.stream_id = (uint64_t)v;
    if (get_i64(a[7], &v) < 0)
        goto done;
    b.offset = (uint64_t)v;
    b.data_end = b.offset + (uint64_t)data_len;
    if (get_i64(a[10], &v) < 0)
        goto done;
    b.in_flight = (uint64_t)v;
    b.cwnd = PyFloat_AsDouble(a[11]);
    b.now = PyFloat_AsDouble(a[13]);
    if (get_i64(a[14], &v) < 0)
        goto done;
    b.max_count = v > 0 ? (unsigned)v : 0;
    if (a[12] != Py_None) { /* (tokens, need, capacity, rate) */
        if (!PyTuple_Check(a[12]) || PyTuple_GET_SIZE(a[12]) != 4) {
            PyErr_SetString(PyExc_TypeError, "pacer must be None or (tokens, need, capacity, rate)");
            goto done;
        }
        b.paced = 1;
        b.tokens = PyFloat_AsDouble(PyTuple_GET_ITEM(a[12], 0));
        b.need = PyFloat_AsDouble(PyTuple_GET_ITEM(a[12], 1));
        b.capacity = PyFloat_AsDouble(PyTuple_GET_ITEM(a[12], 2));
        b.rate = PyFloat_AsDouble(PyTuple_GET_ITEM(a[12], 3));
    }
    if (PyErr_Occurred())
        goto done;
    if (b.dcid_len > 20 || b.stream_id >= ((uint64_t)1 << 62) ||
        b.data_end >= ((uint64_t)1 << 62)) {
        PyErr_SetString(PyExc_ValueError, "seal_stream_burst: CID, stream id or offset too large");
        goto done;
    }
    if (!(packets = PyList_New(0)) || !(lengths = PyList_New(0)))
        goto done;
    while (qr_burst_plan(&b)) {
        pkt = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)b.size);
        if (!pkt)
            goto done;
        n = PyLong_FromSize_t(b.length);
        if (!n || PyList_Append(packets, pkt) < 0 || PyList_Append(lengths, n) < 0) {
            Py_DECREF(pkt);
            Py_XDECREF(n);
            goto done;
        }
        Py_DECREF(n);
        r = qr_burst_seal(&b, PC(self), (uint8_t *)PyBytes_AS_STRING(pkt));
        Py_DECREF(pkt);
        if (r != QR_OK) {
            pc_crypto_error("seal a packet");
            goto done;
        }
    }
    result = Py_BuildValue("(OOd)", packets, lengths, b.tokens);
done:
    put_data(&cv);
    put_data(&dv);
    Py_XDECREF(packets);
    Py_XDECREF(lengths);
    return result;
}

/* The minimal encoding of a varint (v < 2^62) at p; returns the byte after it. */
static uint8_t *put_varint62(uint8_t *p, uint64_t v)
{
    unsigned n = v < 0x40 ? 1 : v < 0x4000 ? 2 : v < 0x40000000 ? 4 : 8, i;
    static const uint8_t prefix[9] = {0, 0x00, 0x40, 0, 0x80, 0, 0, 0, 0xC0};
    for (i = n; i > 0; i--, v >>= 8)
        p[i - 1] = (uint8_t)v;
    p[0] |= prefix[n];
    return p + n;
}

/* seal_reply(dcid, first, pn, pn_len, ack, stream_id, offset, data, fin): one 1-RTT packet
 * of the payload ack (the ACK frame's bytes, maybe empty) + one STREAM frame with a
 * Length field (wire.frames.push_stream_frame's bytes), under the short header of first
 * (0x40 with the spin and key phase bits; pn_len added) to dcid: the bytes
 * PacketProtector.seal_packet(encode_short_header(...), payload, pn) gives.  ValueError
 * for what those raise ValueError for (a CID over 20 bytes, pn_len not 1..4, offset +
 * length beyond 2^62 - 1, a payload too short to sample). */
static PyObject *pc_seal_reply(PyObject *self, PyObject *const *args, Py_ssize_t nargs,
                               PyObject *kwnames)
{
    static const char *const names[] = {"dcid",      "first",  "pn",   "pn_len", "ack",
                                        "stream_id", "offset", "data", "fin"};
    PyObject *a[9], *out = NULL;
    Py_buffer cv, av, dv;
    const uint8_t *cid, *ack, *data;
    Py_ssize_t cid_len, ack_len, data_len, hlen, plen;
    uint64_t first, pn, pn_len, sid, offset;
    uint8_t header[1 + 20 + 4], pn12[QR_PC_IV_SIZE], *p, *o;
    int fin, r;
    unsigned i;
    PARSE("PacketCipher.seal_reply", names, 9, 9, a);
    if (get_u64(a[1], &first) != V_OK || get_u64(a[2], &pn) != V_OK ||
        get_u64(a[3], &pn_len) != V_OK || get_u64(a[5], &sid) != V_OK ||
        get_u64(a[6], &offset) != V_OK) {
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_ValueError, "seal_reply: a value out of range");
        return NULL;
    }
    if ((fin = PyObject_IsTrue(a[8])) < 0)
        return NULL;
    cv.obj = av.obj = dv.obj = NULL;
    if (get_data(a[0], &cv, &cid, &cid_len) < 0 || get_data(a[4], &av, &ack, &ack_len) < 0 ||
        get_data(a[7], &dv, &data, &data_len) < 0)
        goto done;
    if (cid_len > 20 || pn_len < 1 || pn_len > 4 || first > 0xFF || pn > QR_VARINT_MAX ||
        sid > QR_VARINT_MAX || offset > QR_VARINT_MAX ||
        (uint64_t)data_len > QR_VARINT_MAX - offset) {
        PyErr_SetString(PyExc_ValueError, "seal_reply: CID, packet number or STREAM frame "
                                          "out of range");
        goto done;
    }
    plen = ack_len + 1 + 8 + 8 + 8 + data_len; /* at most: shrunk below */
    if (data_len > PC_MAX_LEN - 64 || ack_len > PC_MAX_LEN - 64 - data_len) {
        PyErr_SetString(PyExc_OverflowError, "PacketCipher: packet too long");
        goto done;
    }
    header[0] = (uint8_t)(first | (pn_len - 1));
    memcpy(header + 1, cid, (size_t)cid_len);
    for (i = 0; i < pn_len; i++)
        header[1 + cid_len + i] = (uint8_t)(pn >> (8 * (pn_len - 1 - i)));
    hlen = 1 + cid_len + (Py_ssize_t)pn_len;
    out = PyBytes_FromStringAndSize(NULL, hlen + plen + QR_PC_TAG_SIZE);
    if (!out)
        goto done;
    o = (uint8_t *)PyBytes_AS_STRING(out);
    p = o + hlen; /* the payload straight where its ciphertext goes (sealed in place) */
    memcpy(p, ack, (size_t)ack_len);
    p += ack_len;
    *p = (uint8_t)(0x0A | (offset ? 0x04 : 0) | (fin ? 0x01 : 0));
    p = put_varint62(p + 1, sid);
    if (offset)
        p = put_varint62(p, offset);
    p = put_varint62(p, (uint64_t)data_len);
    memcpy(p, data, (size_t)data_len);
    plen = (p + data_len) - (o + hlen);
    if (plen < 4 - (Py_ssize_t)pn_len) {
        PyErr_SetString(PyExc_ValueError, "payload too short for the header protection sample");
        Py_CLEAR(out);
        goto done;
    }
    memset(pn12, 0, 4);
    for (i = 0; i < 8; i++)
        pn12[11 - i] = (uint8_t)(pn >> (8 * i));
    r = qr_pc_seal(PC(self), pn12, header, (size_t)hlen, o + hlen, (size_t)plen, o);
    if (r != QR_OK) {
        Py_CLEAR(out);
        pc_crypto_error("seal a packet");
        goto done;
    }
    if (_PyBytes_Resize(&out, hlen + plen + QR_PC_TAG_SIZE) < 0)
        out = NULL;
done:
    put_data(&cv);
    put_data(&av);
    put_data(&dv);
    return out;
}

/* A QUIC varint at p[*i] (below end), or -1 when it is truncated. */
static int64_t read_varint(const uint8_t *p, Py_ssize_t *i, Py_ssize_t end)
{
    unsigned n;
    uint64_t v;
    if (*i >= end)
        return -1;
    n = 1u << (p[*i] >> 6);
    if (end - *i < (Py_ssize_t)n)
        return -1;
    v = p[*i] & 0x3F;
    for (unsigned k = 1; k < n; k++)
        v = (v << 8) | p[*i + k];
    *i += n;
    return (int64_t)v;
}

/* The fields (stream_id, offset, data, fin, with_length) of the STREAM frame that starts at
 * payload[start] and ends the payload, as wire.frames.decode_lone_stream_frame decodes it
 * (data a memoryview slice of payload), None for anything else, a malformed frame included
 * (the caller's general path then decodes it and raises). */
static PyObject *stream_fields_at(PyObject *payload, Py_ssize_t start)
{
    const uint8_t *p = (const uint8_t *)PyBytes_AS_STRING(payload);
    Py_ssize_t len = PyBytes_GET_SIZE(payload), i = start + 1, q;
    int64_t sid, offset = 0, length;
    uint8_t t;
    PyObject *view, *data, *result;
    if (len <= start || p[start] < 0x08 || p[start] > 0x0F)
        Py_RETURN_NONE;
    t = p[start];
    if ((sid = read_varint(p, &i, len)) < 0)
        Py_RETURN_NONE;
    if ((t & 0x04) && (offset = read_varint(p, &i, len)) < 0)
        Py_RETURN_NONE;
    if (t & 0x02) {
        if ((length = read_varint(p, &i, len)) < 0 || length > len - i)
            Py_RETURN_NONE;
        q = i + (Py_ssize_t)length;
    } else {
        q = len;
    }
    if (q != len || (uint64_t)offset + (uint64_t)(q - i) > QR_VALUE_MAX - 1)
        Py_RETURN_NONE;
    if (!(view = PyMemoryView_FromObject(payload)))
        return NULL;
    data = PySequence_GetSlice(view, i, q);
    Py_DECREF(view);
    if (!data)
        return NULL;
    result = Py_BuildValue("(LLNOO)", (long long)sid, (long long)offset, data,
                           (t & 0x01) ? Py_True : Py_False, (t & 0x02) ? Py_True : Py_False);
    return result;
}

/* An ACK frame at the start of the payload followed by one STREAM frame that ends it (a
 * request's or a response's payload): sets *ack to (ranges, delay, ecn) as
 * wire.frames' ACK decoder gives them (ranges a list of half-open (start, stop) tuples,
 * highest first; ecn None or (ect0, ect1, ce)) and returns the STREAM frame's fields (as
 * stream_fields_at); None (and *ack NULL) for any other payload, malformed included. */
static PyObject *ack_stream_fields(PyObject *payload, PyObject **ack)
{
    const uint8_t *p = (const uint8_t *)PyBytes_AS_STRING(payload);
    Py_ssize_t len = PyBytes_GET_SIZE(payload), i = 1;
    int64_t largest, delay, count, first, smallest, gap, length, ecn[3];
    PyObject *ranges = NULL, *item, *fields = NULL, *ecn_obj;
    uint8_t t = p[0];
    *ack = NULL;
    if ((largest = read_varint(p, &i, len)) < 0 || (delay = read_varint(p, &i, len)) < 0 ||
        (count = read_varint(p, &i, len)) < 0 || (first = read_varint(p, &i, len)) < 0)
        Py_RETURN_NONE;
    smallest = largest - first;
    if (smallest < 0)
        Py_RETURN_NONE;
    if (!(ranges = PyList_New(0)))
        return NULL;
    for (;;) {
        if (!(item = Py_BuildValue("(LL)", (long long)smallest, (long long)largest + 1)) ||
            PyList_Append(ranges, item) < 0) {
            Py_XDECREF(item);
            goto fail;
        }
        Py_DECREF(item);
        if (count-- == 0)
            break;
        if ((gap = read_varint(p, &i, len)) < 0 || (length = read_varint(p, &i, len)) < 0)
            goto none;
        largest = smallest - gap - 2;
        if (largest < 0)
            goto none; /* (the range below it is below zero too) */
        smallest = largest - length;
        if (smallest < 0)
            goto none;
    }
    if (t == 0x03) {
        for (int k = 0; k < 3; k++)
            if ((ecn[k] = read_varint(p, &i, len)) < 0)
                goto none;
    }
    if (i >= len || p[i] < 0x08 || p[i] > 0x0F)
        goto none; /* (an ACK alone, say: a bulk sender's case) */
    if (!(fields = stream_fields_at(payload, i)))
        goto fail;
    if (fields == Py_None) {
        Py_DECREF(ranges);
        return fields;
    }
    if (t == 0x03)
        ecn_obj = Py_BuildValue("(LLL)", (long long)ecn[0], (long long)ecn[1], (long long)ecn[2]);
    else
        ecn_obj = Py_NewRef(Py_None);
    if (!ecn_obj)
        goto fail;
    if (!(*ack = Py_BuildValue("(NLN)", ranges, (long long)delay, ecn_obj)))
        goto fail_fields;
    return fields;
none:
    Py_DECREF(ranges);
    Py_RETURN_NONE;
fail_fields:
    Py_DECREF(fields);
    return NULL;
fail:
    Py_XDECREF(fields);
    Py_DECREF(ranges);
    return NULL;
}

static PyObject *pc_open_stream(PyObject *self, PyObject *const *args, Py_ssize_t nargs,
                                PyObject *kwnames)
{
    PyObject *opened = pc_open(self, args, nargs, kwnames), *fields, *payload, *ack = NULL;
    PyObject *result;
    const uint8_t *p;
    if (!opened || opened == Py_None)
        return opened;
    payload = PyTuple_GET_ITEM(opened, 1);
    p = (const uint8_t *)PyBytes_AS_STRING(payload);
    if (PyBytes_GET_SIZE(payload) >= 2 && (p[0] == 0x02 || p[0] == 0x03))
        fields = ack_stream_fields(payload, &ack);
    else
        fields = stream_fields_at(payload, 0);
    if (!fields) {
        Py_DECREF(opened);
        return NULL;
    }
    result = PyTuple_Pack(5, PyTuple_GET_ITEM(opened, 0), payload, PyTuple_GET_ITEM(opened, 2),
                          fields, ack ? ack : Py_None);
    Py_DECREF(opened);
    Py_DECREF(fields);
    Py_XDECREF(ack);
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
               "when the packet is too short to sample or fails authentication; OverflowError "
               "when largest_pn is not an int in [-2^62, 2^62].")},
    {"seal_stream_burst", (PyCFunction)(void (*)(void))pc_seal_stream_burst, FASTCALL_KW,
     PyDoc_STR("seal_stream_burst(dcid, first, pn, largest_acked, skip_pn, datagram_size, "
               "stream_id, offset, data, final_size, in_flight, cwnd, pacer, now, max_count) "
               "-> (packets, lengths, tokens): 1-RTT packets of one full STREAM frame each "
               "(burst.h), as the lean builder makes them, while window, pacer, data, count "
               "and the skipped packet number allow.")},
    {"open_stream", (PyCFunction)(void (*)(void))pc_open_stream, FASTCALL_KW,
     PyDoc_STR("open_stream(packet, pn_offset, largest_pn) -> (plain_header, payload, pn, "
               "fields, ack) or None, as open, with fields the (stream_id, offset, data, fin, "
               "with_length) of the STREAM frame that is the whole payload or follows an ACK "
               "frame that starts it, else None; ack that ACK's (ranges, delay, ecn), else "
               "None.")},
    {"seal_reply", (PyCFunction)(void (*)(void))pc_seal_reply, FASTCALL_KW,
     PyDoc_STR("seal_reply(dcid, first, pn, pn_len, ack, stream_id, offset, data, fin) -> "
               "bytes: one 1-RTT packet of ack + one STREAM frame, as seal_packet of "
               "encode_short_header and that payload.")},
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

/* Not garbage-collected: it holds no Python objects. */
PyType_Spec qr_pc_spec = {
    qr_pc_name,
    sizeof(PacketCipherObject),
    0,
    Py_TPFLAGS_DEFAULT | Py_TPFLAGS_IMMUTABLETYPE,
    pc_slots,
};

char qr_pc_name[QR_TYPE_NAME_SIZE];
