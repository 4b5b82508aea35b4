"""The qlog writer thread: flushed qlog text rendered and written off the event loop.

One daemon thread per process (started at first use, again in a forked child) runs the
jobs that :class:`~quicish.qlog.writer.QlogWriter` hands it in background mode, in order:
each is one flush of one writer (its other events' text, rendered by the writer on the
connection's thread, and its bulk records, moved out of the writer), which the thread
renders in one C call with the GIL released (``render_chunk``) and writes to the file
(``write`` releases the GIL too). So with the C core both the rendering of the bulk
packets and the kernel's copy run beside the event loop, on another core when there is
one: this moves CPU time, it removes none.

Back-pressure: the queue holds at most :data:`QUEUE_JOBS` flushes; a writer that flushes
while it is full waits for room (as it waited for its own write before), so what a
connection logs never grows without bound and nothing is dropped. :func:`wait_for`
waits until the jobs handed in so far are done (a writer's ``close()`` does, so its file
is complete when ``close()`` returns); at exit the queue is drained.
"""

from __future__ import annotations

import atexit
import logging
import os
import queue
import threading
from collections.abc import Callable

QUEUE_JOBS = 8  # flushes waiting at most (each up to 2048 bulk packets, ~0.5 MB of text)
_log = logging.getLogger("quicish.qlog")


class _Worker:
    """The thread and its bounded queue (one per process)."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.queue: queue.Queue[Callable[[], None]] = queue.Queue(QUEUE_JOBS)
        self.thread = threading.Thread(target=self._run, name="quicish-qlog", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        jobs = self.queue
        while True:
            job = jobs.get()
            try:
                job()
            except Exception:  # a bug in a job must not stop the others' logging
                _log.exception("qlog writer thread: a job failed")
            finally:
                jobs.task_done()


_worker: _Worker | None = None
_lock = threading.Lock()


def _current() -> _Worker | None:
    """This process's worker (started when needed), or None when no thread can start (the
    interpreter is shutting down): the caller then does the job itself."""
    global _worker
    worker = _worker
    if worker is not None and worker.pid == os.getpid() and worker.thread.is_alive():
        return worker
    with _lock:
        worker = _worker
        if worker is None or worker.pid != os.getpid() or not worker.thread.is_alive():
            try:
                worker = _worker = _Worker()
            except RuntimeError:  # (can't create new thread at interpreter shutdown)
                return None
        return worker


def submit(job: Callable[[], None]) -> None:
    """Run ``job`` on the writer thread after the jobs handed in before it; waits while
    :data:`QUEUE_JOBS` are queued (back-pressure). Runs it here when no thread can run."""
    worker = _current()
    if worker is None:
        job()
        return
    worker.queue.put(job)


def wait_for() -> None:
    """Return when the jobs handed in so far are done (at once on the writer thread, or
    when it is gone)."""
    worker = _worker
    if worker is None or worker.pid != os.getpid():
        return
    if threading.current_thread() is worker.thread:
        return
    done = threading.Event()
    try:
        worker.queue.put(done.set)
    except RuntimeError:  # pragma: no cover (a queue cannot refuse: defensive)
        return
    while not done.wait(0.5):
        if not worker.thread.is_alive():  # (killed at the end of the interpreter)
            return


def pending() -> int:
    """How many jobs wait in the queue (for tests and diagnostics)."""
    worker = _worker
    return 0 if worker is None or worker.pid != os.getpid() else worker.queue.qsize()


atexit.register(wait_for)
