/* What the CPython extension types share: argument conversion, errors, the type specs.
 *
 * The types live one per file (py_rangeset.c, py_reassembly.c, py_cipher.c);
 * pytypes.c holds the shared helpers below and the module export (qr_export_types).
 * These are the only files that include Python.h.  The helpers on every call's path
 * (get_u64, get_varint, PARSE) are static inline so each type file inlines them.
 */
#ifndef QUICISH_PYTYPES_H
#define QUICISH_PYTYPES_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdint.h>

#include "core.h"

/* Objects the types need, set once by qr_export_types (pytypes.c). */
extern PyObject *qr_protocol_error;      /* quicish.errors.ProtocolError */
extern PyObject *qr_iterable;            /* collections.abc.Iterable */
extern PyObject *qr_abstract_range_set;  /* RangeSet's base (the pure twin's AbstractRangeSet) */
extern PyObject *qr_str_ranges;          /* "ranges" (interned) */

/* The error codes of quicish.errors.ErrorCode that the types raise. */
#define QR_FLOW_CONTROL_ERROR 0x3
#define QR_FINAL_SIZE_ERROR 0x6
#define QR_PROTOCOL_VIOLATION 0xA

/* Raise quicish.errors.ProtocolError(code, reason), reason formatted as
 * PyUnicode_FromFormat does.  Returns NULL. */
PyObject *qr_raise_protocol(int code, const char *format, ...);

enum { V_ERR = -1, V_OK = 0, V_NEG = 1, V_BIG = 2 };

/* An int argument (or an object with __index__) as a uint64: V_OK with *out in
 * [0, 2^63), V_NEG for a negative value, V_BIG for 2^63 or more (*out = UINT64_MAX,
 * which every caller treats like the true value: invalid, or "all"), V_ERR with an
 * exception set for a non-integer.  Never raises for an int. */
static inline int get_u64(PyObject *o, uint64_t *out)
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
static inline int get_varint(PyObject *o, uint64_t *out)
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
int qr_parse_args(const char *fname, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames,
                  const char *const *names, Py_ssize_t nreq, Py_ssize_t nmax, PyObject **out);

/* The usual case without keywords in one comparison, else qr_parse_args. */
#define PARSE(fname, names, nreq, nmax, out)                                                  \
    do {                                                                                      \
        if (!kwnames && nargs >= (nreq) && nargs == (nmax)) {                                 \
            Py_ssize_t i_;                                                                    \
            for (i_ = 0; i_ < (nmax); i_++)                                                   \
                (out)[i_] = args[i_];                                                         \
        } else if (qr_parse_args(fname, args, nargs, kwnames, names, nreq, nmax, out) < 0) {  \
            return NULL;                                                                      \
        }                                                                                     \
    } while (0)

#define FASTCALL_KW (METH_FASTCALL | METH_KEYWORDS)

/* The tuple (a, b) of two ints, or NULL. */
PyObject *qr_u64_pair(uint64_t a, uint64_t b);

/* The type specs, named "<type_module>.<Name>" in the name buffers by qr_export_types. */
#define QR_TYPE_NAME_SIZE 200
extern PyType_Spec qr_rs_spec, qr_ra_spec, qr_pc_spec;
extern char qr_rs_name[QR_TYPE_NAME_SIZE], qr_ra_name[QR_TYPE_NAME_SIZE],
    qr_pc_name[QR_TYPE_NAME_SIZE];

/* Module-level functions (py_qlog.c: render_stream_packets), added by qr_export_types,
 * and py_qlog_tap.c's QlogTap type. */
extern PyMethodDef qr_qlog_methods[];
extern PyMethodDef qr_qlog_packet_methods[]; /* py_qlog_packet.c */
extern PyMethodDef qr_udp_methods[];         /* py_udp.c */
extern PyType_Spec qr_tap_spec;
extern char qr_tap_name[QR_TYPE_NAME_SIZE];

/* qlog text being rendered (py_qlog.c): a bytes object grown with _PyBytes_Resize. */
typedef struct {
    PyObject *bytes;
    Py_ssize_t len;
} QrOut;
/* One bulk record at out's end, from a 9-tuple or from its values (ints: packet_number,
 * stream_id, offset, length, size): 0, or -1 with an exception. */
int qr_qlog_put_record(QrOut *out, PyObject *rec, double start);
int qr_qlog_put_fields(QrOut *out, double now, const char *name, Py_ssize_t name_len,
                       const char *ptype, Py_ssize_t ptype_len, const long long ints[5], int fin,
                       double start, PyThreadState **save);

/* The room one record's text takes at most, its time aside (the template's text, under
 * 256 bytes, the strings, 5 ints of up to 21 characters), and with a time of put_ms (at
 * most 24 bytes). */
#define QR_QLOG_ROOM(name_len, ptype_len) (256 + (name_len) + (ptype_len) + 5 * 21)
#define QR_QLOG_BOUND(name_len, ptype_len) (QR_QLOG_ROOM(name_len, ptype_len) + 24)
/* The record's text at p (room for QR_QLOG_ROOM and the time): its end.  No Python. */
char *qr_qlog_fill(char *p, const char *time_text, Py_ssize_t time_len, const char *name,
                   Py_ssize_t name_len, const char *ptype, Py_ssize_t ptype_len,
                   const long long ints[5], int fin);
/* "%.3f" of the milliseconds from start to now (0 when before) at buf (24 bytes): its
 * length, or 0 when the short cut cannot say (then as Python's %: PyOS_double_to_string,
 * or snprintf without the GIL, which rounds the same on glibc). No Python. */
Py_ssize_t qr_qlog_time(char *buf, double now, double start);

/* An exact int in the int64 range into *v: 1, else 0 (no exception). */
static inline int qr_exact_ll(PyObject *o, long long *v)
{
    int overflow;
    if (!PyLong_CheckExact(o))
        return 0;
#if PY_VERSION_HEX < 0x030C0000 && PyLong_SHIFT == 30
    { /* (a packet's numbers are one or two digits: read in place, before 3.12's layout) */
        const digit *d = ((PyLongObject *)o)->ob_digit;
        switch (Py_SIZE(o)) {
        case 0:
            *v = 0;
            return 1;
        case 1:
            *v = (long long)d[0];
            return 1;
        case 2:
            *v = (long long)d[0] | ((long long)d[1] << 30);
            return 1;
        }
    }
#endif
    *v = PyLong_AsLongLongAndOverflow(o, &overflow);
    return !overflow;
}

/* py_qlog_bulk.c's BulkRecords (the type object once exported: qr_bulk_type). */
extern PyType_Spec qr_bulk_spec;
extern char qr_bulk_name[QR_TYPE_NAME_SIZE];
extern PyObject *qr_bulk_type;
int qr_bulk_add(PyObject *bulk, PyObject *const *items, PyObject *tuple);
/* (*hint: where the pair of name and ptype was last found, updated; -1 at first) */
int qr_bulk_add_values(PyObject *bulk, double now, PyObject *name, const char *name_s,
                       Py_ssize_t name_n, PyObject *ptype, const char *ptype_s,
                       Py_ssize_t ptype_n, const long long v[5], int fin, int *hint);
Py_ssize_t qr_bulk_len(PyObject *bulk);
int qr_bulk_render(PyObject *bulk, QrOut *out, double start, Py_ssize_t lo, Py_ssize_t hi,
                   PyThreadState **save);
/* The text the records can take at most, or -1 when some are odd (kept as tuples). */
Py_ssize_t qr_bulk_bound(PyObject *bulk);
void qr_bulk_set_busy(PyObject *bulk, int busy);
int qr_bulk_take(PyObject *bulk, void **recs, Py_ssize_t *len, Py_ssize_t *cap);
int qr_bulk_fill(const void *recs, Py_ssize_t lo, Py_ssize_t hi, double start, char **buf,
                 size_t *cap, size_t *len);
void qr_bulk_release(void *recs, Py_ssize_t len, Py_ssize_t cap);

/* py_qlog_spool.c's QlogSpool. */
extern PyType_Spec qr_spool_spec;
extern char qr_spool_name[QR_TYPE_NAME_SIZE];

/* Set up what a type file needs beyond the objects above (interned strings): 0, or -1
 * with an exception. */
int qr_ra_setup(void);
int qr_pc_setup(void);

#endif
