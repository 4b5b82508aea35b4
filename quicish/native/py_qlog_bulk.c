/* BulkRecords: the qlog writer's bulk packet records kept as C structs.
 *
 * quicish.qlog.writer.QlogWriter.bulk holds one record per packet that is one STREAM
 * frame, (time, name, packet_type, packet_number, stream_id, offset, fin, length, size).
 * With the C core it is a BulkRecords: the list operations the writer and the trace use
 * (append of a 9-tuple, len, indexing, iteration, clear) over a growable C array, so the
 * QlogTap's per-packet record (qr_bulk_add) makes no Python object, and
 * render_stream_packets renders the structs without reading objects back.  A record whose
 * values are not exactly a float time, str names, ints in the int64 range and a bool fin
 * is kept as its tuple ("odd") and rendered as py_qlog.c renders a tuple (TypeError or
 * OverflowError for what C does not take: the writer then renders it in Python).  Indexing
 * gives back equal tuples; the pure twin is a plain list.
 */
#include "pytypes.h"

#include <string.h>

/* The (name, packet_type) pairs of plain records, kept for the process (strong
 * references, never freed): a record holds the pair's index, no reference, so handing
 * an array back frees nothing per record, and the worker reads them without the GIL (an
 * entry is written before any record names it, and never changed). The GIL guards it. */
#define PAIRS 32
typedef struct {
    PyObject *name, *ptype;
    const char *name_s, *ptype_s; /* their UTF-8 (cached by the strs) */
    Py_ssize_t name_n, ptype_n;
} Pair;
static Pair pairs[PAIRS];
static int npairs;

/* One cache line a record (64 bytes): the event loop's thread writes it, the worker
 * reads it. */
typedef struct {
    double now;
    long long v[5]; /* packet_number, stream_id, offset, length, size */
    PyObject *odd;  /* the tuple itself, when its values do not fit the struct, else NULL */
    int fin;
    int pair; /* index in pairs */
} BulkRec;
_Static_assert(sizeof(BulkRec) <= 64, "a BulkRecords record fits a cache line");

/* The index of (name, ptype) in pairs, found by identity (the tap's interned strs, the
 * trace's constants: a few compares) or added; when the table is full, an entry of equal
 * strs; -1 when there is none. */
static int pair_of(PyObject *name, const char *name_s, Py_ssize_t name_n, PyObject *ptype,
                   const char *ptype_s, Py_ssize_t ptype_n)
{
    int i;
    for (i = 0; i < npairs; i++)
        if (pairs[i].name == name && pairs[i].ptype == ptype)
            return i;
    if (npairs == PAIRS) {
        for (i = 0; i < npairs; i++)
            if (pairs[i].name_n == name_n && pairs[i].ptype_n == ptype_n &&
                !memcmp(pairs[i].name_s, name_s, (size_t)name_n) &&
                !memcmp(pairs[i].ptype_s, ptype_s, (size_t)ptype_n))
                return i;
        return -1;
    }
    pairs[npairs].name = Py_NewRef(name);
    pairs[npairs].ptype = Py_NewRef(ptype);
    pairs[npairs].name_s = name_s;
    pairs[npairs].ptype_s = ptype_s;
    pairs[npairs].name_n = name_n;
    pairs[npairs].ptype_n = ptype_n;
    return npairs++;
}

typedef struct {
    PyObject_HEAD
    BulkRec *recs;
    Py_ssize_t len, cap;
    Py_ssize_t odd;   /* how many odd records: clear() then frees with care */
    Py_ssize_t bound; /* the text the records can take at most (qr_qlog_put_fields' room) */
    Py_ssize_t hint;  /* the capacity to start from (what a detached array had) */
    int busy;         /* rendered without the GIL: no change allowed meanwhile */
} BulkObject;

#define BOUND QR_QLOG_BOUND

static int busy_error(BulkObject *self)
{
    if (!self->busy)
        return 0;
    PyErr_SetString(PyExc_RuntimeError, "BulkRecords: being rendered in another thread");
    return -1;
}

PyObject *qr_bulk_type;

/* Arrays given back by qr_bulk_release, for the next BulkRecords that grows from none:
 * a writer's flushes then reuse two or three arrays, whose pages stay mapped (a fresh
 * one is page faults on the event loop's thread, its free an munmap). The GIL guards it. */
#define POOL 4
static BulkRec *pool[POOL];
static Py_ssize_t pool_cap[POOL], pooled;

static int grow(BulkObject *self)
{
    Py_ssize_t cap = self->cap ? 2 * self->cap : (self->hint > 256 ? self->hint : 256);
    BulkRec *recs;
    if (!self->recs && pooled) {
        pooled--;
        self->recs = pool[pooled];
        self->cap = pool_cap[pooled];
        if (self->cap > self->len)
            return 0;
    }
    if (cap > PY_SSIZE_T_MAX / (Py_ssize_t)sizeof(BulkRec)) {
        PyErr_NoMemory();
        return -1;
    }
    recs = PyMem_Realloc(self->recs, (size_t)cap * sizeof(BulkRec));
    if (!recs) {
        PyErr_NoMemory();
        return -1;
    }
    self->recs = recs;
    self->cap = cap;
    return 0;
}

/* An exact int in the int64 range into *v: 1, else 0 (no exception). */
static int exact_int(PyObject *o, long long *v)
{
    int overflow;
    if (!PyLong_CheckExact(o))
        return 0;
    *v = PyLong_AsLongLongAndOverflow(o, &overflow);
    return !overflow;
}

/* Append the record of items[0..8]; `tuple` is the record as a tuple when the caller has
 * one (NULL: made here if the values are odd).  0, or -1 with an exception. */
int qr_bulk_add(PyObject *op, PyObject *const *items, PyObject *tuple)
{
    BulkObject *self = (BulkObject *)op;
    BulkRec *rec;
    static const int at[5] = {3, 4, 5, 7, 8};
    long long v[5];
    const char *name_s = NULL, *ptype_s = NULL;
    Py_ssize_t name_n = 0, ptype_n = 0;
    int i, fits;
    if (busy_error(self) < 0 || (self->len == self->cap && grow(self) < 0))
        return -1;
    fits = PyFloat_CheckExact(items[0]) && PyUnicode_CheckExact(items[1]) &&
           PyUnicode_CheckExact(items[2]) && PyBool_Check(items[6]);
    for (i = 0; fits && i < 5; i++)
        fits = exact_int(items[at[i]], &v[i]);
    if (fits) {
        name_s = PyUnicode_AsUTF8AndSize(items[1], &name_n);
        ptype_s = name_s ? PyUnicode_AsUTF8AndSize(items[2], &ptype_n) : NULL;
        if (!ptype_s) { /* (a lone surrogate: the tuple's rendering raises, in its place) */
            PyErr_Clear();
            fits = 0;
        }
    }
    rec = &self->recs[self->len];
    if (fits && (rec->pair = pair_of(items[1], name_s, name_n, items[2], ptype_s, ptype_n)) < 0)
        fits = 0; /* (more names than the table holds: kept as the tuple) */
    if (fits) {
        rec->now = PyFloat_AS_DOUBLE(items[0]);
        memcpy(rec->v, v, sizeof(v));
        rec->fin = items[6] == Py_True;
        rec->odd = NULL;
        self->bound += BOUND(name_n, ptype_n);
    } else {
        if (tuple) {
            Py_INCREF(tuple);
        } else {
            if (!(tuple = PyTuple_New(9)))
                return -1;
            for (i = 0; i < 9; i++) {
                Py_INCREF(items[i]);
                PyTuple_SET_ITEM(tuple, i, items[i]);
            }
        }
        rec->odd = tuple;
        self->odd++;
    }
    self->len++;
    return 0;
}

/* Append a plain record from C values (name and ptype exact strs, their UTF-8 given):
 * 0, or -1 with an exception.  (QlogTap's path: nothing converted back from objects.) */
int qr_bulk_add_values(PyObject *op, double now, PyObject *name, const char *name_s,
                       Py_ssize_t name_n, PyObject *ptype, const char *ptype_s,
                       Py_ssize_t ptype_n, const long long v[5], int fin, int *hint)
{
    BulkObject *self = (BulkObject *)op;
    BulkRec *rec;
    int pair = *hint;
    if (busy_error(self) < 0 || (self->len == self->cap && grow(self) < 0))
        return -1;
    if (pair < 0 || pair >= npairs || pairs[pair].name != name || pairs[pair].ptype != ptype)
        pair = *hint = pair_of(name, name_s, name_n, ptype, ptype_s, ptype_n);
    if (pair < 0) {
        /* (more names than the table holds: the record as its tuple) */
        PyObject *items[9];
        int i, ret = -1;
        static const int at[5] = {3, 4, 5, 7, 8};
        memset(items, 0, sizeof(items));
        items[1] = Py_NewRef(name);
        items[2] = Py_NewRef(ptype);
        items[6] = PyBool_FromLong(fin);
        if ((items[0] = PyFloat_FromDouble(now)))
            for (i = 0, ret = 0; i < 5 && !ret; i++)
                ret = (items[at[i]] = PyLong_FromLongLong(v[i])) ? 0 : -1;
        if (!ret)
            ret = qr_bulk_add(op, items, NULL);
        for (i = 0; i < 9; i++)
            Py_XDECREF(items[i]);
        return ret;
    }
    rec = &self->recs[self->len++];
    rec->now = now;
    rec->pair = pair;
    memcpy(rec->v, v, sizeof(rec->v));
    rec->fin = fin;
    rec->odd = NULL;
    self->bound += BOUND(name_n, ptype_n);
    return 0;
}

Py_ssize_t qr_bulk_len(PyObject *op) { return ((BulkObject *)op)->len; }

Py_ssize_t qr_bulk_bound(PyObject *op)
{
    BulkObject *self = (BulkObject *)op;
    return self->odd ? -1 : self->bound;
}

void qr_bulk_set_busy(PyObject *op, int busy) { ((BulkObject *)op)->busy = busy; }

/* Records [lo, hi) at out's end: 0, or -1 with an exception (bounds checked by caller).
 * With `save` (the GIL released, *save its thread state): no odd record, and out has the
 * room of qr_bulk_bound (see qr_qlog_put_fields). */
int qr_bulk_render(PyObject *op, QrOut *out, double start, Py_ssize_t lo, Py_ssize_t hi,
                   PyThreadState **save)
{
    BulkObject *self = (BulkObject *)op;
    Py_ssize_t i;
    for (i = lo; i < hi && i < self->len; i++) {
        BulkRec *rec = &self->recs[i];
        if (rec->odd) {
            if (qr_qlog_put_record(out, rec->odd, start) < 0)
                return -1;
            continue;
        }
        const Pair *pr = &pairs[rec->pair];
        if (qr_qlog_put_fields(out, rec->now, pr->name_s, pr->name_n, pr->ptype_s, pr->ptype_n,
                               rec->v, rec->fin, start, save) < 0)
            return -1;
    }
    return 0;
}

static PyObject *bulk_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    if (PyTuple_GET_SIZE(args) || (kwds && PyDict_GET_SIZE(kwds))) {
        PyErr_SetString(PyExc_TypeError, "BulkRecords() takes no arguments");
        return NULL;
    }
    return type->tp_alloc(type, 0);
}

/* Take the records out (left empty, capacity kept as a hint): the array and its length,
 * for qr_bulk_fill without the GIL and qr_bulk_release with it.  0, or -1 with an
 * exception (busy, or odd records: those need Python to render). */
int qr_bulk_take(PyObject *op, void **recs, Py_ssize_t *len, Py_ssize_t *cap)
{
    BulkObject *self = (BulkObject *)op;
    if (busy_error(self) < 0)
        return -1;
    if (self->odd) {
        PyErr_SetString(PyExc_TypeError, "BulkRecords: odd records cannot be taken");
        return -1;
    }
    *recs = self->recs;
    *len = self->len;
    *cap = self->cap;
    self->hint = self->cap > self->hint ? self->cap : self->hint;
    self->recs = NULL;
    self->len = self->cap = self->bound = 0;
    return 0;
}

/* Records [lo, hi) of a taken array at the end of a malloc'd buffer (*buf, *cap, *len),
 * grown with realloc: no Python object touched, no GIL needed.  0, or -1 (no memory). */
int qr_bulk_fill(const void *recs, Py_ssize_t lo, Py_ssize_t hi, double start, char **buf,
                 size_t *cap, size_t *len)
{
    const BulkRec *rec;
    const Pair *pr;
    char time_buf[400], *grown;
    Py_ssize_t i, time_len;
    size_t need;
    for (i = lo; i < hi; i++) {
        rec = (const BulkRec *)recs + i;
        time_len = qr_qlog_time(time_buf, rec->now, start);
        if (!time_len) { /* (glibc's %.3f rounds as Python's %) */
            double ms = (rec->now - start) * 1000.0;
            time_len = snprintf(time_buf, sizeof(time_buf), "%.3f", ms > 0.0 ? ms : 0.0);
            if (time_len < 0 || time_len >= (Py_ssize_t)sizeof(time_buf))
                return -1;
        }
        pr = &pairs[rec->pair];
        need = (size_t)(QR_QLOG_ROOM(pr->name_n, pr->ptype_n) + time_len);
        if (*len + need > *cap) {
            size_t want = *len + need;
            want = want < 2 * *cap ? 2 * *cap : want + (want >> 1);
            if (!(grown = realloc(*buf, want)))
                return -1;
            *buf = grown;
            *cap = want;
        }
        *len = (size_t)(qr_qlog_fill(*buf + *len, time_buf, time_len, pr->name_s, pr->name_n,
                                     pr->ptype_s, pr->ptype_n, rec->v, rec->fin) -
                        *buf);
    }
    return 0;
}

/* Free a taken array (no odd record: nothing to release in it), into the pool when there
 * is room (with the GIL: it guards the pool). */
void qr_bulk_release(void *recs, Py_ssize_t len, Py_ssize_t cap)
{
    (void)len;
    if (recs && pooled < POOL) {
        pool[pooled] = (BulkRec *)recs;
        pool_cap[pooled++] = cap;
    } else {
        PyMem_Free(recs);
    }
}

/* detach(): a new BulkRecords with this one's records, this one left empty (O(1)). */
static PyObject *bulk_detach(PyObject *op, PyObject *unused)
{
    BulkObject *self = (BulkObject *)op, *chunk;
    (void)unused;
    if (busy_error(self) < 0)
        return NULL;
    if (!(chunk = (BulkObject *)Py_TYPE(op)->tp_alloc(Py_TYPE(op), 0)))
        return NULL;
    chunk->recs = self->recs;
    chunk->len = self->len;
    chunk->cap = self->cap;
    chunk->odd = self->odd;
    chunk->bound = self->bound;
    self->hint = self->cap > self->hint ? self->cap : self->hint;
    self->recs = NULL;
    self->len = self->cap = self->odd = self->bound = 0;
    return (PyObject *)chunk;
}

static PyObject *bulk_append(PyObject *op, PyObject *rec)
{
    if (!PyTuple_Check(rec) || PyTuple_GET_SIZE(rec) != 9) {
        PyErr_SetString(PyExc_TypeError, "BulkRecords.append: a 9-tuple expected");
        return NULL;
    }
    if (qr_bulk_add(op, &PyTuple_GET_ITEM(rec, 0), rec) < 0)
        return NULL;
    Py_RETURN_NONE;
}

/* Drop every record: 0 (nothing here can fail). */
static int drop_all(BulkObject *self)
{
    Py_ssize_t i, n = self->len;
    BulkRec *recs = self->recs;
    self->bound = 0;
    if (self->odd) {
        /* an odd tuple's last reference may run Python code that uses this object: take
         * the array out first */
        self->recs = NULL;
        self->len = self->cap = self->odd = 0;
        for (i = 0; i < n; i++)
            Py_XDECREF(recs[i].odd);
        PyMem_Free(recs);
        return 0;
    }
    self->len = 0; /* (plain records hold no reference) */
    return 0;
}

static PyObject *bulk_clear_method(PyObject *op, PyObject *unused)
{
    (void)unused;
    if (busy_error((BulkObject *)op) < 0)
        return NULL;
    drop_all((BulkObject *)op);
    Py_RETURN_NONE;
}

static Py_ssize_t bulk_length(PyObject *op) { return ((BulkObject *)op)->len; }

static PyObject *bulk_item(PyObject *op, Py_ssize_t i)
{
    BulkObject *self = (BulkObject *)op;
    BulkRec *rec;
    PyObject *t;
    int k;
    static const int at[5] = {3, 4, 5, 7, 8};
    if (i < 0 || i >= self->len) {
        PyErr_SetString(PyExc_IndexError, "BulkRecords index out of range");
        return NULL;
    }
    rec = &self->recs[i];
    if (rec->odd) {
        Py_INCREF(rec->odd);
        return rec->odd;
    }
    if (!(t = PyTuple_New(9)))
        return NULL;
    PyTuple_SET_ITEM(t, 1, Py_NewRef(pairs[rec->pair].name));
    PyTuple_SET_ITEM(t, 2, Py_NewRef(pairs[rec->pair].ptype));
    PyTuple_SET_ITEM(t, 6, PyBool_FromLong(rec->fin));
    if (!(PyTuple_GET_ITEM(t, 0) = PyFloat_FromDouble(rec->now)))
        goto fail;
    for (k = 0; k < 5; k++)
        if (!(PyTuple_GET_ITEM(t, at[k]) = PyLong_FromLongLong(rec->v[k])))
            goto fail;
    return t;
fail:
    Py_DECREF(t);
    return NULL;
}

static int bulk_traverse(PyObject *op, visitproc visit, void *arg)
{
    BulkObject *self = (BulkObject *)op;
    Py_ssize_t i;
    Py_VISIT(Py_TYPE(op));
    if (self->odd)
        for (i = 0; i < self->len; i++)
            Py_VISIT(self->recs[i].odd);
    return 0;
}

static int bulk_tp_clear(PyObject *op) { return drop_all((BulkObject *)op); }

static void bulk_dealloc(PyObject *op)
{
    PyTypeObject *type = Py_TYPE(op);
    PyObject_GC_UnTrack(op);
    drop_all((BulkObject *)op);
    PyMem_Free(((BulkObject *)op)->recs);
    type->tp_free(op);
    Py_DECREF(type);
}

static PyMethodDef bulk_methods[] = {
    {"append", bulk_append, METH_O, PyDoc_STR("append(record): a 9-tuple record at the end.")},
    {"clear", bulk_clear_method, METH_NOARGS, PyDoc_STR("clear(): no records.")},
    {"detach", bulk_detach, METH_NOARGS,
     PyDoc_STR("detach() -> BulkRecords: the records moved to a new object, none left here.")},
    {NULL, NULL, 0, NULL},
};

static PyType_Slot bulk_slots[] = {
    {Py_tp_doc, (void *)PyDoc_STR("qlog bulk packet records as C structs (a list's subset).")},
    {Py_tp_new, bulk_new},
    {Py_tp_dealloc, bulk_dealloc},
    {Py_tp_traverse, bulk_traverse},
    {Py_tp_clear, bulk_tp_clear},
    {Py_tp_methods, bulk_methods},
    {Py_sq_length, bulk_length},
    {Py_sq_item, bulk_item},
    {0, NULL},
};

char qr_bulk_name[QR_TYPE_NAME_SIZE];

PyType_Spec qr_bulk_spec = {
    qr_bulk_name,
    sizeof(BulkObject),
    0,
    Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    bulk_slots,
};
