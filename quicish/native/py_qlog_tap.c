/* QlogTap: the trace's per-packet calls in the bulk case, in C.
 *
 * quicish.proto.trace.Trace, while a qlog file is its only sink, lets the engine call the
 * tap instead of four of its Python methods: tap.sent (Trace.stream_sent: the lean
 * builder's packet), tap.burst (Trace.burst_sent: a burst of the bulk send path, its
 * packets and data lengths as StreamBurst got them from the C sealer), tap.received
 * (Trace.packet_received: the general path's packet of one STREAM frame) and
 * tap.stream_received (Trace.stream_received: the lean receiver's packet, the frame's
 * fields as the C opener decoded them, no frame object made).  In the plain bulk case (one
 * STREAM frame, no FIN, a stream already logged as open, for a received packet the key
 * phase unchanged) they do what those methods do: keep the packet's time as tap.now (which
 * the trace reads: setting an attribute of the trace per packet cost about 2% of a bulk
 * transfer), append the record to the writer's list or BulkRecords (as C values: no
 * Python object made), flush at the limit.  Anything else goes to a Python method
 * (`sent_slow`, `received_slow`, `stream_slow`; a burst's other packets one by one to
 * `sent_slow`, as Trace.burst_sent hands them to stream_sent, and odd arguments to
 * `burst_slow`), so the events are the same either way (quicish.native.pure_qlog.QlogTap
 * is the reference). */
#include "pytypes.h"

#include <structmember.h>

typedef struct {
    PyObject_HEAD
    PyObject *trace;     /* the trace (its key phase comes as tap.phase) */
    PyObject *now;       /* the time of the last packet recorded here (tap.now), or NULL */
    PyObject *bulk;      /* list or BulkRecords: the writer's bulk records */
    int is_bulk;         /* bulk is a BulkRecords: records appended as C values */
    PyObject *streams;   /* set: stream ids logged as open */
    PyObject *keys;      /* has `phase` */
    PyObject *keys_dict; /* keys' __dict__, where `phase` is read (no descriptor on its
                          * type), or NULL: read by name */
    PyObject *flush;     /* called when len(bulk) reaches limit */
    PyObject *frame_type;
    PyObject *sent_slow, *received_slow, *stream_slow, *burst_slow;
    Py_ssize_t limit;
    long phase; /* the key phase the trace last logged (tap.phase, set by the trace) */
    int pair[2]; /* the index of each name's pair in BulkRecords' table (a hint), or -1 */
    PyObject *known_sid; /* the last stream id found in streams, or NULL */
    /* where frame_type's slots fin, stream_id, offset and data are in an instance (as
     * Python's own LOAD_ATTR reads them), or -1: read by name */
    Py_ssize_t slot[4];
} TapObject;

static PyObject *s_now, *s_phase, *s_stream_id, *s_offset, *s_data, *s_fin, *s_sent,
    *s_received, *s_1rtt, *s_empty;
static const char *u_sent, *u_received, *u_1rtt; /* their UTF-8 */
static Py_ssize_t n_sent, n_received, n_1rtt;

static int tap_setup(void)
{
#define INTERN(var, text)                                             \
    if (!var && !(var = PyUnicode_InternFromString(text)))            \
        return -1;
    INTERN(s_now, "now");
    INTERN(s_phase, "phase");
    INTERN(s_stream_id, "stream_id");
    INTERN(s_offset, "offset");
    INTERN(s_data, "data");
    INTERN(s_fin, "fin");
    INTERN(s_sent, "quic:packet_sent");
    INTERN(s_received, "quic:packet_received");
    INTERN(s_1rtt, "1RTT");
#undef INTERN
    if (!s_empty && !(s_empty = PyBytes_FromStringAndSize(NULL, 0)))
        return -1;
    if (!(u_sent = PyUnicode_AsUTF8AndSize(s_sent, &n_sent)) ||
        !(u_received = PyUnicode_AsUTF8AndSize(s_received, &n_received)) ||
        !(u_1rtt = PyUnicode_AsUTF8AndSize(s_1rtt, &n_1rtt)))
        return -1;
    return 0;
}

static PyObject *tap_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"trace", "bulk", "streams", "keys", "flush", "limit",
                             "frame_type", "sent_slow", "received_slow", "stream_slow",
                             "burst_slow", NULL};
    PyObject *o[10];
    Py_ssize_t limit;
    TapObject *self;
    int i;
    if (tap_setup() < 0)
        return NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OOO!OOnOOOOO:QlogTap", kwlist, &o[0], &o[1],
                                     &PySet_Type, &o[2], &o[3], &o[4], &limit, &o[5], &o[6],
                                     &o[7], &o[8], &o[9]))
        return NULL;
    if (!PyList_Check(o[1]) && (PyObject *)Py_TYPE(o[1]) != qr_bulk_type) {
        PyErr_SetString(PyExc_TypeError, "QlogTap: bulk must be a list or BulkRecords");
        return NULL;
    }
    if (!PyType_Check(o[5])) {
        PyErr_SetString(PyExc_TypeError, "QlogTap: frame_type must be a class");
        return NULL;
    }
    if (!(self = (TapObject *)type->tp_alloc(type, 0)))
        return NULL;
    for (i = 0; i < 10; i++)
        Py_INCREF(o[i]);
    self->trace = o[0];
    self->bulk = o[1];
    self->is_bulk = (PyObject *)Py_TYPE(o[1]) == qr_bulk_type;
    self->streams = o[2];
    self->keys = o[3];
    self->flush = o[4];
    self->frame_type = o[5];
    self->sent_slow = o[6];
    self->received_slow = o[7];
    self->stream_slow = o[8];
    self->burst_slow = o[9];
    self->limit = limit;
    self->phase = 0;
    self->pair[0] = self->pair[1] = -1;
    /* (a plain instance attribute read from the dict: a tenth of what the generic lookup
     * costs per packet; the dict is made once if the instance keeps its values inline) */
    if (!_PyType_Lookup(Py_TYPE(o[3]), s_phase)) {
        PyObject *d = PyObject_GenericGetDict(o[3], NULL);
        if (d && PyDict_CheckExact(d))
            self->keys_dict = d;
        else
            Py_XDECREF(d);
        PyErr_Clear();
    }
    {
        PyObject *names[4] = {s_fin, s_stream_id, s_offset, s_data}, *d;
        for (i = 0; i < 4; i++) {
            self->slot[i] = -1;
            d = PyDict_GetItemWithError(((PyTypeObject *)o[5])->tp_dict, names[i]);
            if (d && Py_IS_TYPE(d, &PyMemberDescr_Type)) {
                PyMemberDef *m = ((PyMemberDescrObject *)d)->d_member;
                if (m->type == T_OBJECT_EX && !(m->flags & PY_AUDIT_READ))
                    self->slot[i] = m->offset;
            }
        }
        if (PyErr_Occurred()) {
            Py_DECREF(self);
            return NULL;
        }
    }
    return (PyObject *)self;
}

/* Attribute i (fin, stream_id, offset, data) of a frame_type instance: a new reference,
 * or NULL with an exception. */
static PyObject *frame_attr(TapObject *self, PyObject *frame, int i)
{
    static PyObject **names[4] = {&s_fin, &s_stream_id, &s_offset, &s_data};
    PyObject *v;
    if (self->slot[i] >= 0) {
        v = *(PyObject **)((char *)frame + self->slot[i]);
        if (v) {
            Py_INCREF(v);
            return v;
        }
    }
    return PyObject_GetAttr(frame, *names[i]);
}

static int tap_traverse(PyObject *op, visitproc visit, void *arg)
{
    TapObject *self = (TapObject *)op;
    Py_VISIT(Py_TYPE(op));
    Py_VISIT(self->trace);
    Py_VISIT(self->now);
    Py_VISIT(self->bulk);
    Py_VISIT(self->streams);
    Py_VISIT(self->keys);
    Py_VISIT(self->keys_dict);
    Py_VISIT(self->flush);
    Py_VISIT(self->frame_type);
    Py_VISIT(self->sent_slow);
    Py_VISIT(self->received_slow);
    Py_VISIT(self->stream_slow);
    Py_VISIT(self->burst_slow);
    Py_VISIT(self->known_sid);
    return 0;
}

static int tap_clear(PyObject *op)
{
    TapObject *self = (TapObject *)op;
    Py_CLEAR(self->trace);
    Py_CLEAR(self->now);
    Py_CLEAR(self->bulk);
    Py_CLEAR(self->streams);
    Py_CLEAR(self->keys);
    Py_CLEAR(self->keys_dict);
    Py_CLEAR(self->flush);
    Py_CLEAR(self->frame_type);
    Py_CLEAR(self->sent_slow);
    Py_CLEAR(self->received_slow);
    Py_CLEAR(self->stream_slow);
    Py_CLEAR(self->burst_slow);
    Py_CLEAR(self->known_sid);
    return 0;
}

static void tap_dealloc(PyObject *op)
{
    PyTypeObject *type = Py_TYPE(op);
    PyObject_GC_UnTrack(op);
    tap_clear(op);
    type->tp_free(op);
    Py_DECREF(type);
}

/* Whether the stream `sid` was logged as open: the last id found so is compared first (a
 * strong reference: the same object, so the same value; ids are never dropped from the
 * set).  1, 0, or -1 with an exception. */
static int stream_known(TapObject *self, PyObject *sid)
{
    int known;
    if (sid == self->known_sid)
        return 1;
    known = PySet_Contains(self->streams, sid);
    if (known > 0)
        Py_XSETREF(self->known_sid, Py_NewRef(sid));
    return known;
}

/* After a record: tap.now set, the writer flushed at the limit.  0, or -1 with an exception. */
static int recorded(TapObject *self, PyObject *now)
{
    PyObject *r;
    Py_INCREF(now);
    Py_XSETREF(self->now, now);
    if ((self->is_bulk ? qr_bulk_len(self->bulk) : PyList_GET_SIZE(self->bulk)) >= self->limit) {
        if (!(r = PyObject_CallNoArgs(self->flush)))
            return -1;
        Py_DECREF(r);
    }
    return 0;
}

/* The record (now, name, "1RTT", pn, sid, offset, False, length, size) appended, tap.now
 * set, the writer flushed at the limit: 0, or -1 with an exception.  obj[i] is the i-th
 * int (pn, sid, offset, length, size) as an object, or NULL and then v[i] holds it.  Into
 * a BulkRecords as C values when they are plain (a float time, int64 ints), else as the
 * record's tuple. */
static int tap_add(TapObject *self, PyObject *now, int received, PyObject *const obj[5],
                   long long v[5])
{
    PyObject *items[9], *ints[5], *made[5] = {NULL, NULL, NULL, NULL, NULL}, *rec,
                                   *name = received ? s_received : s_sent;
    int i, exact = 1, failed = 0, atomic;
    if (!self->bulk) {
        PyErr_SetString(PyExc_ValueError, "QlogTap: cleared");
        return -1;
    }
    for (i = 0; i < 5 && exact; i++)
        if (obj[i] && !qr_exact_ll(obj[i], &v[i]))
            exact = 0;
    if (self->is_bulk && exact && PyFloat_CheckExact(now)) {
        /* C values in the writer's array: no Python object made or read back */
        if (qr_bulk_add_values(self->bulk, PyFloat_AS_DOUBLE(now), name,
                               received ? u_received : u_sent, received ? n_received : n_sent,
                               s_1rtt, u_1rtt, n_1rtt, v, 0, &self->pair[received]) < 0)
            return -1;
    } else {
        atomic = PyFloat_CheckExact(now);
        for (i = 0; i < 5; i++) {
            if (!(ints[i] = obj[i]) && !(ints[i] = made[i] = PyLong_FromLongLong(v[i])))
                failed = 1;
            else if (!PyLong_CheckExact(ints[i]))
                atomic = 0;
        }
        if (!failed) {
            items[0] = now, items[1] = name, items[2] = s_1rtt, items[3] = ints[0];
            items[4] = ints[1], items[5] = ints[2], items[6] = Py_False, items[7] = ints[3];
            items[8] = ints[4];
            if (self->is_bulk) {
                failed = qr_bulk_add(self->bulk, items, NULL) < 0;
            } else if (!(rec = PyTuple_New(9))) {
                failed = 1;
            } else {
                for (i = 0; i < 9; i++) {
                    Py_INCREF(items[i]);
                    PyTuple_SET_ITEM(rec, i, items[i]);
                }
                /* Its items hold no references to containers (a float, strs, ints, a bool;
                 * a subclass at worst, the slow path's): out of the collector's sight,
                 * which would otherwise traverse each record once before untracking it. */
                if (atomic)
                    PyObject_GC_UnTrack(rec);
                failed = PyList_Append(self->bulk, rec) < 0;
                Py_DECREF(rec);
            }
        }
        for (i = 0; i < 5; i++)
            Py_XDECREF(made[i]);
        if (failed)
            return -1;
    }
    return recorded(self, now);
}

/* None after tap_add, or NULL. */
static PyObject *added(int ret)
{
    if (ret < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *cleared(void)
{
    PyErr_SetString(PyExc_ValueError, "QlogTap: cleared");
    return NULL;
}

/* tap.sent(now, pn, size, payload, records): Trace.stream_sent. */
static PyObject *tap_sent(PyObject *op, PyObject *const *args, Py_ssize_t nargs)
{
    TapObject *self = (TapObject *)op;
    PyObject *records, *rec, *result = NULL, *obj[5];
    long long v[5];
    int known;
    if (nargs == 5 && self->sent_slow && PyList_CheckExact(args[4]) &&
        PyList_GET_SIZE(args[4]) == 1) {
        records = args[4];
        rec = PyList_GET_ITEM(records, 0);
        if (PyTuple_Check(rec) && PyTuple_GET_SIZE(rec) == 4 && PyTuple_GET_ITEM(rec, 3) == Py_False) {
            Py_INCREF(rec); /* (a set lookup may run Python code, for an odd stream id) */
            known = stream_known(self, PyTuple_GET_ITEM(rec, 0));
            if (known > 0) {
                obj[0] = args[1], obj[1] = PyTuple_GET_ITEM(rec, 0);
                obj[2] = PyTuple_GET_ITEM(rec, 1), obj[3] = PyTuple_GET_ITEM(rec, 2);
                obj[4] = args[2];
                result = added(tap_add(self, args[0], 0, obj, v));
            }
            Py_DECREF(rec);
            if (known != 0)
                return result; /* recorded, or NULL with the lookup's exception */
        }
    }
    if (!self->sent_slow)
        return cleared();
    return PyObject_Vectorcall(self->sent_slow, args, nargs, NULL);
}

/* Whether the trace's key phase is the one it last logged (tap.phase): 1, 0, or -1 with an
 * exception.  (Read from the keys' instance dict when there is one: no attribute lookup.) */
static int phase_unchanged(TapObject *self)
{
    PyObject *phase = NULL;
    long keys_phase;
    if (self->keys_dict && (phase = PyDict_GetItemWithError(self->keys_dict, s_phase)))
        Py_INCREF(phase);
    else if (PyErr_Occurred() || !(phase = PyObject_GetAttr(self->keys, s_phase)))
        return -1;
    keys_phase = PyLong_Check(phase) ? PyLong_AsLong(phase) : -1;
    Py_DECREF(phase);
    if (keys_phase == -1 && PyErr_Occurred())
        return -1;
    return keys_phase == self->phase;
}

/* tap.received(now, ptype, pn, size, payload, lone): Trace.packet_received. */
static PyObject *tap_received(PyObject *op, PyObject *const *args, Py_ssize_t nargs)
{
    TapObject *self = (TapObject *)op;
    PyObject *lone, *fin = NULL, *sid = NULL, *offset = NULL, *data = NULL, *result = NULL,
                    *obj[5];
    long long v[5];
    Py_ssize_t n;
    int plain = 0;
    if (!self->received_slow)
        return cleared();
    if (nargs != 6 || (PyObject *)Py_TYPE(args[5]) != self->frame_type)
        return PyObject_Vectorcall(self->received_slow, args, nargs, NULL);
    lone = args[5];
    Py_INCREF(lone);
    if (!(fin = frame_attr(self, lone, 0)))
        goto done;
    if (fin == Py_False) {
        if (!(sid = frame_attr(self, lone, 1)))
            goto done;
        plain = stream_known(self, sid);
        if (plain < 0)
            goto done;
    }
    if (plain && (plain = phase_unchanged(self)) < 0)
        goto done;
    if (plain) {
        if (!(offset = frame_attr(self, lone, 2)) || !(data = frame_attr(self, lone, 3)))
            goto done;
        if ((n = PyObject_Length(data)) < 0)
            goto done;
        obj[0] = args[2], obj[1] = sid, obj[2] = offset, obj[3] = NULL, obj[4] = args[3];
        v[3] = n;
        result = added(tap_add(self, args[0], 1, obj, v));
    } else {
        result = PyObject_Vectorcall(self->received_slow, args, nargs, NULL);
    }
done:
    Py_DECREF(lone);
    Py_XDECREF(fin);
    Py_XDECREF(sid);
    Py_XDECREF(offset);
    Py_XDECREF(data);
    return result;
}

/* tap.stream_received(now, pn, size, payload, lone): Trace.stream_received, lone the
 * C opener's (stream_id, offset, data, fin, with_length). */
static PyObject *tap_stream_received(PyObject *op, PyObject *const *args, Py_ssize_t nargs)
{
    TapObject *self = (TapObject *)op;
    PyObject *lone, *sid, *obj[5];
    long long v[5];
    Py_ssize_t n;
    int plain;
    if (!self->stream_slow)
        return cleared();
    if (nargs != 5 || !PyTuple_CheckExact(args[4]) || PyTuple_GET_SIZE(args[4]) < 4 ||
        PyTuple_GET_ITEM(args[4], 3) != Py_False)
        return PyObject_Vectorcall(self->stream_slow, args, nargs, NULL);
    lone = args[4]; /* (a tuple, held by the caller: its items stay) */
    sid = PyTuple_GET_ITEM(lone, 0);
    if ((plain = stream_known(self, sid)) > 0)
        plain = phase_unchanged(self);
    if (plain < 0)
        return NULL;
    if (!plain)
        return PyObject_Vectorcall(self->stream_slow, args, nargs, NULL);
    if ((n = PyObject_Length(PyTuple_GET_ITEM(lone, 2))) < 0)
        return NULL;
    v[3] = n;
    if (self->is_bulk && PyFloat_CheckExact(args[0]) && qr_exact_ll(args[1], &v[0]) &&
        qr_exact_ll(sid, &v[1]) && qr_exact_ll(PyTuple_GET_ITEM(lone, 1), &v[2]) &&
        qr_exact_ll(args[2], &v[4])) { /* (tap_add's first case, without its generality) */
        if (qr_bulk_add_values(self->bulk, PyFloat_AS_DOUBLE(args[0]), s_received, u_received,
                               n_received, s_1rtt, u_1rtt, n_1rtt, v, 0, &self->pair[1]) < 0)
            return NULL;
        return added(recorded(self, args[0]));
    }
    obj[0] = args[1], obj[1] = sid, obj[2] = PyTuple_GET_ITEM(lone, 1), obj[3] = NULL;
    obj[4] = args[2];
    return added(tap_add(self, args[0], 1, obj, v));
}

#define U62 ((long long)1 << 62)

/* An exact int in [0, 2^62) into *v: 1, else 0 (no exception). */
static int get_u62(PyObject *o, long long *v) { return qr_exact_ll(o, v) && *v >= 0 && *v < U62; }

/* Whether tap.burst's arguments are its plain case (what pure_qlog.plain_burst says). */
static int plain_burst(PyObject *const *args, Py_ssize_t nargs)
{
    PyObject *packets, *lengths;
    long long pn, sid, end, final, n;
    Py_ssize_t i, count;
    if (nargs != 7 || !PyList_CheckExact(args[5]) || !PyList_CheckExact(args[6]))
        return 0;
    packets = args[5], lengths = args[6];
    count = PyList_GET_SIZE(packets);
    if (PyList_GET_SIZE(lengths) != count || !get_u62(args[1], &pn) || !get_u62(args[2], &sid) ||
        !get_u62(args[3], &end) || (args[4] != Py_None && !get_u62(args[4], &final)) ||
        count >= U62 - pn)
        return 0;
    for (i = 0; i < count; i++) {
        if (!PyBytes_CheckExact(PyList_GET_ITEM(packets, i)) ||
            !get_u62(PyList_GET_ITEM(lengths, i), &n) || n >= U62 - end)
            return 0;
        end += n;
    }
    return 1;
}

/* tap.burst(now, pn, stream_id, offset, final_size, packets, lengths): Trace.burst_sent.
 * Packet i is pn + i, len(packets[i]) bytes, one STREAM frame of lengths[i] bytes at the
 * offset after the previous one's, with FIN where it ends at final_size (None: unknown);
 * each is recorded, or handed to sent_slow as Trace.burst_sent hands it to stream_sent
 * (payload b"", its record a plain tuple). */
static PyObject *tap_burst(PyObject *op, PyObject *const *args, Py_ssize_t nargs)
{
    TapObject *self = (TapObject *)op;
    PyObject *now, *sid, *packets, *lengths, *slow[5], *obj[5] = {NULL, NULL, NULL, NULL, NULL},
                                                        *r;
    long long pn = 0, offset = 0, final = -1, v[5];
    Py_ssize_t i;
    int known, fin, failed, fast;
    if (!self->sent_slow || !self->burst_slow || !self->bulk)
        return cleared();
    if (!plain_burst(args, nargs))
        return PyObject_Vectorcall(self->burst_slow, args, nargs, NULL);
    now = args[0], sid = args[2], packets = args[5], lengths = args[6];
    qr_exact_ll(args[1], &pn);
    qr_exact_ll(args[3], &offset);
    if (args[4] != Py_None)
        qr_exact_ll(args[4], &final);
    obj[1] = sid;
    qr_exact_ll(sid, &v[1]);
    fast = self->is_bulk && PyFloat_CheckExact(now);
    for (i = 0; i < PyList_GET_SIZE(packets); i++, pn++) {
        /* (checked above; a Python call below could change the lists: checked again) */
        if (i >= PyList_GET_SIZE(lengths) || !PyBytes_CheckExact(PyList_GET_ITEM(packets, i)) ||
            !get_u62(PyList_GET_ITEM(lengths, i), &v[3]) || v[3] >= U62 - offset) {
            PyErr_SetString(PyExc_RuntimeError, "QlogTap.burst: its lists changed");
            return NULL;
        }
        v[0] = pn, v[2] = offset, v[4] = PyBytes_GET_SIZE(PyList_GET_ITEM(packets, i));
        fin = offset + v[3] == final;
        known = fin ? 0 : stream_known(self, sid);
        if (known < 0)
            return NULL;
        if (known && fast) { /* (tap_add's first case, the values known to be plain) */
            if (qr_bulk_add_values(self->bulk, PyFloat_AS_DOUBLE(now), s_sent, u_sent, n_sent,
                                   s_1rtt, u_1rtt, n_1rtt, v, 0, &self->pair[0]) < 0 ||
                recorded(self, now) < 0)
                return NULL;
        } else if (known) {
            if (tap_add(self, now, 0, obj, v) < 0)
                return NULL;
        } else { /* (now, pn, size, b"", [(sid, offset, length, fin)]) */
            failed = 1;
            slow[0] = now, slow[3] = s_empty;
            slow[1] = PyLong_FromLongLong(pn);
            slow[2] = PyLong_FromSsize_t((Py_ssize_t)v[4]);
            slow[4] = Py_BuildValue("[(OLLO)]", sid, offset, v[3], fin ? Py_True : Py_False);
            if (slow[1] && slow[2] && slow[4]) {
                r = PyObject_Vectorcall(self->sent_slow, slow, 5, NULL);
                failed = !r;
                Py_XDECREF(r);
            }
            Py_XDECREF(slow[1]);
            Py_XDECREF(slow[2]);
            Py_XDECREF(slow[4]);
            if (failed)
                return NULL;
        }
        offset += v[3];
    }
    Py_RETURN_NONE;
}

static PyMethodDef tap_methods[] = {
    {"sent", (PyCFunction)(void (*)(void))tap_sent, METH_FASTCALL,
     PyDoc_STR("sent(now, pn, size, payload, records): Trace.stream_sent.")},
    {"received", (PyCFunction)(void (*)(void))tap_received, METH_FASTCALL,
     PyDoc_STR("received(now, ptype, pn, size, payload, lone): Trace.packet_received.")},
    {"stream_received", (PyCFunction)(void (*)(void))tap_stream_received, METH_FASTCALL,
     PyDoc_STR("stream_received(now, pn, size, payload, lone): Trace.stream_received.")},
    {"burst", (PyCFunction)(void (*)(void))tap_burst, METH_FASTCALL,
     PyDoc_STR("burst(now, pn, stream_id, offset, final_size, packets, lengths): "
               "Trace.burst_sent.")},
    {NULL, NULL, 0, NULL},
};

static PyMemberDef tap_members[] = {
    {"now", T_OBJECT, offsetof(TapObject, now), READONLY,
     PyDoc_STR("The time of the last packet recorded here (None before the first).")},
    {"phase", T_LONG, offsetof(TapObject, phase), 0,
     PyDoc_STR("The key phase the trace last logged (received packets of another go to it).")},
    {NULL, 0, 0, 0, NULL},
};

static PyType_Slot tap_slots[] = {
    {Py_tp_doc, (void *)PyDoc_STR("The trace's per-packet calls of the bulk case, in C.")},
    {Py_tp_new, tap_new},
    {Py_tp_dealloc, tap_dealloc},
    {Py_tp_traverse, tap_traverse},
    {Py_tp_clear, tap_clear},
    {Py_tp_methods, tap_methods},
    {Py_tp_members, tap_members},
    {0, NULL},
};

char qr_tap_name[QR_TYPE_NAME_SIZE];

PyType_Spec qr_tap_spec = {
    qr_tap_name,
    sizeof(TapObject),
    0,
    Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    tap_slots,
};
