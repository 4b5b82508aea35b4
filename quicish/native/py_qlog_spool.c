/* QlogSpool: a qlog file's flushes rendered and written by a C thread, without the GIL.
 *
 * quicish.qlog.writer.QlogWriter in background mode hands each flush to its file's
 * QlogSpool: submit(records, start, parts, events) takes the BulkRecords' array out of
 * the object (left empty, O(1)), copies the other events' text (parts' bytes, rendered by
 * the writer) and queues a job.  One worker thread per process (a pthread, started at
 * the first job, again in a forked child) renders each job's records into its own buffer
 * (qr_qlog_fill: no Python object is touched, so it never takes the GIL) and writes the
 * text to a dup of the file's descriptor.  So rendering and the kernel's copy run beside
 * the event loop: this moves CPU time off the loop's thread, it removes none.
 *
 * Back-pressure: at most QUEUE_JOBS jobs (of all spools) are queued or being written;
 * submit waits for room with the GIL released, so what connections log never grows
 * without bound and nothing is dropped.  wait() returns when this spool's jobs are
 * written; a write error (errno in `error`) drops the spool's later jobs.  A job's records
 * were allocated with the GIL (their names are in BulkRecords' table, kept for the
 * process): the worker only reads them and leaves the job on a list that the next submit
 * or wait frees, with the GIL.  The pure twin (quicish.native.pure.
 * QlogSpool) writes at submit, in the caller's thread: the same bytes.
 */
#include "pytypes.h"

#ifdef _WIN32
/* No worker thread here: QlogSpool() raises OSError, and the writer writes in its own
 * thread (background mode off). */
typedef struct {
    PyObject_HEAD
} SpoolObject;

static PyObject *spool_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    (void)type, (void)args, (void)kwds;
    PyErr_SetString(PyExc_OSError, "QlogSpool: no writer thread on this platform");
    return NULL;
}

static PyObject *spool_nothing(PyObject *cls, PyObject *unused)
{
    (void)cls, (void)unused;
    Py_RETURN_NONE;
}

static void spool_dealloc(PyObject *op)
{
    PyTypeObject *type = Py_TYPE(op);
    type->tp_free(op);
    Py_DECREF(type);
}

static PyMethodDef spool_methods[] = {
    {"drain", spool_nothing, METH_NOARGS | METH_CLASS, NULL},
    {"start", spool_nothing, METH_NOARGS | METH_CLASS, NULL},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef spool_getset[] = {
    {NULL, NULL, NULL, NULL, NULL},
};
#else
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#if defined(__linux__)
#include <sys/resource.h>
#include <sys/syscall.h>
#endif

#define QUEUE_JOBS 8 /* jobs queued or being written at most: each up to 2048 packets */

typedef struct {
    int fd;           /* a dup of the file's descriptor, or -1 once closed */
    int error;        /* errno of a failed write (later jobs dropped), or 0 */
    long refs;        /* the spool object and each job not yet freed */
    long pending;     /* jobs queued or being written */
    long long events; /* events written */
} Sink;

typedef struct {
    Py_ssize_t a, b; /* text[a:a+b] when text, else records [a, b) */
    int text;
} Seg;

typedef struct Job {
    struct Job *next;
    Sink *sink;
    double start;
    char *text; /* the other events' text, one after another (malloc) */
    Seg *segs;  /* (malloc) */
    Py_ssize_t nsegs;
    void *recs; /* the records taken from a BulkRecords (qr_bulk_take), or NULL */
    Py_ssize_t nrecs, cap;
    long long events;
} Job;

/* Everything below is guarded by mu. */
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t wake = PTHREAD_COND_INITIALIZER;    /* a job was queued */
static pthread_cond_t changed = PTHREAD_COND_INITIALIZER; /* a job was done */
static Job *head, *tail, *running, *done_jobs;
static int queued, forked_hooks;
static pid_t worker_pid; /* the process whose worker runs, or 0 */

static int write_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return errno ? errno : EIO;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Room for need more bytes in *buf: 0, or ENOMEM. */
static int ensure(char **buf, size_t *cap, size_t len, size_t need)
{
    size_t want = len + need;
    char *grown;
    if (want <= *cap)
        return 0;
    want = want < 2 * *cap ? 2 * *cap : want + (want >> 1);
    if (!(grown = realloc(*buf, want)))
        return ENOMEM;
    *buf = grown;
    *cap = want;
    return 0;
}

/* The job's text into *buf, then written: 0, or an errno. */
static int run_job(Job *job, char **buf, size_t *cap)
{
    size_t len = 0;
    Py_ssize_t i;
    int err;
    for (i = 0; i < job->nsegs; i++) {
        Seg *seg = &job->segs[i];
        if (seg->text) {
            if ((err = ensure(buf, cap, len, (size_t)seg->b)))
                return err;
            memcpy(*buf + len, job->text + seg->a, (size_t)seg->b);
            len += (size_t)seg->b;
        } else if (qr_bulk_fill(job->recs, seg->a, seg->b, job->start, buf, cap, &len) < 0) {
            return ENOMEM;
        }
    }
    return write_all(job->sink->fd, *buf, len);
}

static void *worker(void *unused)
{
    char *buf = NULL;
    size_t cap = 0;
    Job *job;
    int err, skip;
    (void)unused;
#if defined(__linux__) && defined(SYS_gettid)
    /* A background task (nice 19, this thread only): woken on the event loop's CPU, it
     * does not preempt the loop (it ran there for its whole job at each flush before). */
    setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), 19);
#endif
    for (;;) {
        pthread_mutex_lock(&mu);
        while (!head)
            pthread_cond_wait(&wake, &mu);
        job = head;
        if (!(head = job->next))
            tail = NULL;
        running = job;
        skip = job->sink->error != 0 || job->sink->fd < 0;
        pthread_mutex_unlock(&mu);
        err = skip ? 0 : run_job(job, &buf, &cap);
        pthread_mutex_lock(&mu);
        if (!skip) {
            if (err)
                job->sink->error = err;
            else
                job->sink->events += job->events;
        }
        running = NULL;
        queued--;
        job->sink->pending--;
        job->next = done_jobs;
        done_jobs = job;
        pthread_cond_broadcast(&changed);
        pthread_mutex_unlock(&mu);
    }
    return NULL;
}

/* (called with mu held) */
static void sink_release(Sink *sink)
{
    if (--sink->refs == 0) {
        if (sink->fd >= 0)
            close(sink->fd);
        free(sink);
    }
}

/* Free the jobs the worker is done with (the GIL held: it guards the records' pool). */
static void reap(void)
{
    Job *list, *next;
    pthread_mutex_lock(&mu);
    list = done_jobs;
    done_jobs = NULL;
    for (next = list; next; next = next->next)
        sink_release(next->sink);
    pthread_mutex_unlock(&mu);
    for (; list; list = next) {
        next = list->next;
        if (list->recs)
            qr_bulk_release(list->recs, list->nrecs, list->cap);
        free(list->text);
        free(list->segs);
        free(list);
    }
}

/* fork: the child has no worker; the jobs queued in the parent are the parent's to write. */
static void before_fork(void) { pthread_mutex_lock(&mu); }
static void after_fork_parent(void) { pthread_mutex_unlock(&mu); }
static void after_fork_child(void)
{
    Job *job;
    pthread_mutex_init(&mu, NULL);
    pthread_cond_init(&wake, NULL);
    pthread_cond_init(&changed, NULL);
    if (running) { /* (left unwritten here, and its spool no longer waits for it) */
        running->next = head;
        head = running;
        running = NULL;
    }
    while (head) { /* onto the done list: freed by the next reap */
        job = head;
        head = job->next;
        job->sink->pending--;
        job->next = done_jobs;
        done_jobs = job;
    }
    tail = NULL;
    queued = 0;
    worker_pid = 0;
}

/* The worker running in this process: 0, or -1 with OSError. (mu held) */
static int start_worker(void)
{
    pthread_t thread;
    pthread_attr_t attr;
    int err;
    if (worker_pid == getpid())
        return 0;
    if (!forked_hooks) {
        if ((err = pthread_atfork(before_fork, after_fork_parent, after_fork_child))) {
            errno = err;
            return -1;
        }
        forked_hooks = 1;
    }
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    err = pthread_create(&thread, &attr, worker, NULL);
    pthread_attr_destroy(&attr);
    if (err) {
        errno = err;
        return -1;
    }
    worker_pid = getpid();
    return 0;
}

typedef struct {
    PyObject_HEAD
    Sink *sink;
} SpoolObject;

static PyObject *spool_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"fd", NULL};
    SpoolObject *self;
    int fd, copy;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "i:QlogSpool", kwlist, &fd))
        return NULL;
    if ((copy = dup(fd)) < 0)
        return PyErr_SetFromErrno(PyExc_OSError);
    if (!(self = (SpoolObject *)type->tp_alloc(type, 0))) {
        close(copy);
        return NULL;
    }
    if (!(self->sink = calloc(1, sizeof(Sink)))) {
        close(copy);
        Py_DECREF(self);
        return PyErr_NoMemory();
    }
    self->sink->fd = copy;
    self->sink->refs = 1;
    return (PyObject *)self;
}

/* Wait until the spool's jobs are done (GIL released), then free the done ones. */
static void spool_wait_pending(Sink *sink)
{
    Py_BEGIN_ALLOW_THREADS
    pthread_mutex_lock(&mu);
    while (sink->pending > 0)
        pthread_cond_wait(&changed, &mu);
    pthread_mutex_unlock(&mu);
    Py_END_ALLOW_THREADS
    reap();
}

/* submit(records, start, parts, events): records a BulkRecords of plain records (taken:
 * left empty) or None; parts bytes (copied) and ints (each: the records from the
 * previous int, or 0, up to it). */
static PyObject *spool_submit(PyObject *op, PyObject *const *args, Py_ssize_t nargs)
{
    SpoolObject *self = (SpoolObject *)op;
    PyObject *records, *parts = NULL, *item;
    Py_ssize_t i, n, nparts, text_len = 0, done = 0, end, nrecs = 0, cap = 0;
    long long events;
    double start;
    Job *job = NULL;
    int err;
    if (nargs != 4) {
        PyErr_SetString(PyExc_TypeError, "submit(records, start, parts, events)");
        return NULL;
    }
    records = args[0];
    if (!self->sink || self->sink->fd < 0) {
        PyErr_SetString(PyExc_ValueError, "QlogSpool: closed");
        return NULL;
    }
    if (records != Py_None && (!qr_bulk_type || (PyObject *)Py_TYPE(records) != qr_bulk_type)) {
        PyErr_SetString(PyExc_TypeError, "QlogSpool.submit: records must be a BulkRecords");
        return NULL;
    }
    if (records != Py_None && qr_bulk_bound(records) < 0) {
        PyErr_SetString(PyExc_TypeError, "QlogSpool.submit: records that C does not take");
        return NULL;
    }
    start = PyFloat_AsDouble(args[1]);
    if (start == -1.0 && PyErr_Occurred())
        return NULL;
    events = PyLong_AsLongLong(args[3]);
    if (events == -1 && PyErr_Occurred())
        return NULL;
    if (!(parts = PySequence_Tuple(args[2])))
        return NULL;
    nparts = PyTuple_GET_SIZE(parts);
    n = records == Py_None ? 0 : qr_bulk_len(records);
    for (i = 0; i < nparts; i++) {
        item = PyTuple_GET_ITEM(parts, i);
        if (PyBytes_CheckExact(item)) {
            text_len += PyBytes_GET_SIZE(item);
            continue;
        }
        if (!PyLong_CheckExact(item)) {
            PyErr_SetString(PyExc_TypeError, "QlogSpool.submit: parts must be bytes or ints");
            goto fail;
        }
        end = PyLong_AsSsize_t(item);
        if (end == -1 && PyErr_Occurred())
            goto fail;
        if (end < done || end > n) {
            PyErr_Format(PyExc_IndexError, "QlogSpool.submit: [%zd, %zd) not within %zd records",
                         done, end, n);
            goto fail;
        }
        done = end;
    }
    if (!(job = calloc(1, sizeof(Job))) || !(job->segs = malloc(sizeof(Seg) * (nparts + 1))) ||
        !(job->text = malloc((size_t)text_len + 1))) {
        PyErr_NoMemory();
        goto fail;
    }
    for (i = 0, text_len = 0, done = 0; i < nparts; i++) {
        Seg *seg = &job->segs[i];
        item = PyTuple_GET_ITEM(parts, i);
        if (PyBytes_CheckExact(item)) {
            seg->text = 1;
            seg->a = text_len;
            seg->b = PyBytes_GET_SIZE(item);
            memcpy(job->text + text_len, PyBytes_AS_STRING(item), (size_t)seg->b);
            text_len += seg->b;
        } else {
            end = PyLong_AsSsize_t(item);
            seg->text = 0;
            seg->a = done;
            seg->b = end;
            done = end;
        }
    }
    job->nsegs = nparts;
    job->start = start;
    job->events = events;
    if (records != Py_None && qr_bulk_take(records, &job->recs, &nrecs, &cap) < 0)
        goto fail;
    job->nrecs = nrecs;
    job->cap = cap;
    Py_CLEAR(parts);
    reap();
    job->sink = self->sink;
    err = 0;
    Py_BEGIN_ALLOW_THREADS
    pthread_mutex_lock(&mu);
    if (start_worker() < 0) {
        err = errno ? errno : EAGAIN;
    } else {
        while (queued >= QUEUE_JOBS)
            pthread_cond_wait(&changed, &mu);
        if (tail)
            tail->next = job;
        else
            head = job;
        tail = job;
        queued++;
        job->sink->pending++;
        job->sink->refs++;
        pthread_cond_signal(&wake);
    }
    pthread_mutex_unlock(&mu);
    Py_END_ALLOW_THREADS
    if (err) { /* no thread: the job's text written here */
        char *buf = NULL;
        size_t cap = 0;
        if (!self->sink->error) {
            int werr = run_job(job, &buf, &cap);
            if (werr)
                self->sink->error = werr;
            else
                self->sink->events += events;
        }
        free(buf);
        if (job->recs)
            qr_bulk_release(job->recs, job->nrecs, job->cap);
        free(job->text);
        free(job->segs);
        free(job);
    }
    Py_RETURN_NONE;
fail:
    Py_XDECREF(parts);
    if (job) {
        free(job->text);
        free(job->segs);
        free(job);
    }
    return NULL;
}

static PyObject *spool_wait(PyObject *op, PyObject *unused)
{
    SpoolObject *self = (SpoolObject *)op;
    (void)unused;
    if (self->sink)
        spool_wait_pending(self->sink);
    Py_RETURN_NONE;
}

/* close(): wait, then close the descriptor (idempotent). */
static PyObject *spool_close(PyObject *op, PyObject *unused)
{
    SpoolObject *self = (SpoolObject *)op;
    (void)unused;
    if (self->sink) {
        spool_wait_pending(self->sink);
        pthread_mutex_lock(&mu);
        if (self->sink->fd >= 0) {
            close(self->sink->fd);
            self->sink->fd = -1;
        }
        pthread_mutex_unlock(&mu);
    }
    Py_RETURN_NONE;
}

/* drain(): wait until no job of any spool is queued (at exit). */
static PyObject *spool_drain(PyObject *cls, PyObject *unused)
{
    (void)cls;
    (void)unused;
    Py_BEGIN_ALLOW_THREADS
    pthread_mutex_lock(&mu);
    while (queued > 0 && worker_pid == getpid())
        pthread_cond_wait(&changed, &mu);
    pthread_mutex_unlock(&mu);
    Py_END_ALLOW_THREADS
    reap();
    Py_RETURN_NONE;
}

/* start(): the worker started now (it takes the calling thread's CPU affinity). */
static PyObject *spool_start(PyObject *cls, PyObject *unused)
{
    int failed;
    (void)cls;
    (void)unused;
    pthread_mutex_lock(&mu);
    failed = start_worker() < 0;
    pthread_mutex_unlock(&mu);
    if (failed)
        return PyErr_SetFromErrno(PyExc_OSError);
    Py_RETURN_NONE;
}

static PyObject *spool_get_error(PyObject *op, void *unused)
{
    SpoolObject *self = (SpoolObject *)op;
    int error;
    (void)unused;
    pthread_mutex_lock(&mu);
    error = self->sink ? self->sink->error : 0;
    pthread_mutex_unlock(&mu);
    return PyLong_FromLong(error);
}

static PyObject *spool_get_events(PyObject *op, void *unused)
{
    SpoolObject *self = (SpoolObject *)op;
    long long events;
    (void)unused;
    pthread_mutex_lock(&mu);
    events = self->sink ? self->sink->events : 0;
    pthread_mutex_unlock(&mu);
    return PyLong_FromLongLong(events);
}

static PyObject *spool_get_pending(PyObject *op, void *unused)
{
    SpoolObject *self = (SpoolObject *)op;
    long pending;
    (void)unused;
    pthread_mutex_lock(&mu);
    pending = self->sink ? self->sink->pending : 0;
    pthread_mutex_unlock(&mu);
    return PyLong_FromLong(pending);
}

static void spool_dealloc(PyObject *op)
{
    SpoolObject *self = (SpoolObject *)op;
    PyTypeObject *type = Py_TYPE(op);
    if (self->sink) {
        spool_wait_pending(self->sink); /* (its descriptor is its own: nothing is lost) */
        pthread_mutex_lock(&mu);
        sink_release(self->sink);
        pthread_mutex_unlock(&mu);
        self->sink = NULL;
    }
    type->tp_free(op);
    Py_DECREF(type);
}

static PyMethodDef spool_methods[] = {
    {"submit", (PyCFunction)(void (*)(void))spool_submit, METH_FASTCALL,
     PyDoc_STR("submit(records, start, parts, events): a flush, written by the worker.")},
    {"wait", spool_wait, METH_NOARGS, PyDoc_STR("wait(): this spool's jobs written.")},
    {"close", spool_close, METH_NOARGS, PyDoc_STR("close(): wait, then close the descriptor.")},
    {"drain", spool_drain, METH_NOARGS | METH_CLASS,
     PyDoc_STR("drain(): wait until no job of any spool is queued.")},
    {"start", spool_start, METH_NOARGS | METH_CLASS,
     PyDoc_STR("start(): the worker thread started now (with the caller's CPU affinity).")},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef spool_getset[] = {
    {"error", spool_get_error, NULL, PyDoc_STR("errno of a failed write, or 0."), NULL},
    {"events_written", spool_get_events, NULL, PyDoc_STR("events written so far."), NULL},
    {"pending", spool_get_pending, NULL, PyDoc_STR("jobs queued or being written."), NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

#endif /* _WIN32 */

static PyType_Slot spool_slots[] = {
    {Py_tp_doc, (void *)PyDoc_STR("A qlog file's flushes, rendered and written by a C thread.")},
    {Py_tp_new, spool_new},
    {Py_tp_dealloc, spool_dealloc},
    {Py_tp_methods, spool_methods},
    {Py_tp_getset, spool_getset},
    {0, NULL},
};

char qr_spool_name[QR_TYPE_NAME_SIZE];

PyType_Spec qr_spool_spec = {
    qr_spool_name,
    sizeof(SpoolObject),
    0,
    Py_TPFLAGS_DEFAULT,
    spool_slots,
};
