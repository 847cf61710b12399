"""Where the trainer trains: one child process, kept for the trainer's life.

Answering a trigger (:func:`~driftline.core.lifecycle.answer.answer_trigger`: learn,
serialize, profile, gate) is pure-Python CPU work. Run in a thread of the trainer, it
shared one GIL with the trainer's live loop (:mod:`driftline.consumers.live`), which then
learnt and checkpointed at a fraction of its speed while a trigger trained, and slowed the
answer down in turn. In a child process both run at full speed on their own core.

:class:`TrainPool` is a :class:`~concurrent.futures.ProcessPoolExecutor` of one process,
started with the ``spawn`` method (never ``fork``: the trainer runs librdkafka threads,
which a forked child would inherit in whatever state they were), warmed when the trainer
starts (the child imports the training code and the configured model factories, so the
first trigger does not pay for it). A call and its arguments are pickled in the calling
thread when submitted (a snapshot: the live loop may change the registry meanwhile); what
the child returns comes back pickled. The child:

* publishes nothing and holds no Kafka client: only the parent publishes. It may write a
  large artifact to the artifact directory (:func:`store_in`); a version that is never
  published leaves an unreferenced file there, nothing more;
* dies with the trainer (``PR_SET_PDEATHSIG``: a SIGKILLed trainer takes its child along
  instead of leaving it computing an answer nobody will read; Linux sends it when the
  *thread* that started the child ends, so the pool is started, and a dead child
  replaced, from the thread that runs the trainer), and ignores SIGINT (a Ctrl-C reaches
  the whole process group; the parent decides when to stop);
* logs through its own root handler, to the stderr it inherits, at the parent's level and
  in the parent's format: its ``learned N/N rows`` lines land beside the parent's.

A child that dies (killed, out of memory) breaks the pool: the pending call raises
:class:`~concurrent.futures.process.BrokenProcessPool`, which the trainer answers like any
other failure (a ``training_failed`` alert), and :meth:`TrainPool.submit` starts a fresh
child for the next call.
"""

from __future__ import annotations

import ctypes
import functools
import logging
import multiprocessing
import os
import pickle
import signal
import sys
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any

from driftline.core.model.estimators import write_artifact

__all__ = ["BrokenProcessPool", "TrainPool", "log_progress", "store_in", "wall_ms"]

log = logging.getLogger("driftline.trainer")

_PR_SET_PDEATHSIG = 1


def wall_ms() -> int:
    """Milliseconds since the epoch: the clock a trigger's answer is stamped with."""
    return int(time.time() * 1000)


def store_in(directory: str | Path) -> Callable[[str, str, bytes], str]:
    """An artifact store that pickles (it crosses to the child): :func:`write_artifact`
    under ``directory``."""
    return functools.partial(write_artifact, Path(directory))


def log_progress(model: str, done: int, total: int) -> None:
    """The ``learned N/N rows`` lines: about ten per run, every 1,000 rows at least."""
    step = max(1_000, total // 10 // 1_000 * 1_000)
    if done % step == 0 or done == total:
        log.info("%s: learned %d/%d rows", model, done, total)


def _die_with(parent: int) -> None:
    """SIGKILL this process when its parent dies (Linux); elsewhere, nothing. Where the
    libc refuses (prctl returns -1, it does not raise), a warning says so: the child
    would outlive a SIGKILLed trainer."""
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
            errno = ctypes.get_errno()
            raise OSError(errno, os.strerror(errno))
    except (OSError, AttributeError) as exc:
        log.warning("training child: PR_SET_PDEATHSIG not set (%s); it will not die with "
                    "the trainer", exc)  # fmt: skip
    if os.getppid() != parent:  # the parent died before the line above ran
        os._exit(1)


def _init_child(parent: int, level: int, fmt: str | None, datefmt: str | None) -> None:
    logging.basicConfig(level=level, format=fmt or logging.BASIC_FORMAT, datefmt=datefmt)
    _die_with(parent)
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _warm(factories: tuple[str, ...]) -> int:
    """Import the training code and the model factories; the child's pid."""
    from driftline.core.lifecycle import answer  # noqa: F401
    from driftline.core.model.estimators import resolve_factory

    for name in factories:
        try:
            resolve_factory(name)
        except Exception as exc:  # a bad factory fails its trigger, not the warm-up
            log.warning("model factory %s not imported in the training child: %s", name, exc)
    return os.getpid()


def _call(payload: bytes) -> Any:
    fn, args, kwargs = pickle.loads(payload)
    return fn(*args, **kwargs)


def _parent_format() -> tuple[str | None, str | None]:
    for handler in logging.getLogger().handlers:
        if handler.formatter is not None:
            return handler.formatter._fmt, handler.formatter.datefmt
    return None, None


class TrainPool:
    """One child process that runs the trainer's calls (see the module docstring)."""

    def __init__(self, factories: Iterable[str] = ()) -> None:
        self._context = multiprocessing.get_context("spawn")
        self._factories = tuple(sorted(set(factories)))
        self._pool: ProcessPoolExecutor | None = None
        self.started = 0
        """Children started so far (1 + the number of broken ones replaced)."""
        self.warm: Future[int] | None = None
        """The warm-up call of the current child: its pid once it ran."""

    def start(self) -> None:
        """Start the child and warm it, without waiting (a no-op when it runs)."""
        if self._pool is not None:
            return
        fmt, datefmt = _parent_format()
        level = logging.getLogger("driftline").getEffectiveLevel()
        self._pool = ProcessPoolExecutor(
            1, mp_context=self._context, initializer=_init_child,
            initargs=(os.getpid(), level, fmt, datefmt),
        )  # fmt: skip
        self.started += 1
        self.warm = self._pool.submit(_warm, self._factories)

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        """Run ``fn(*args, **kwargs)`` in the child; everything is pickled now. A broken
        child (it died) is replaced first."""
        payload = pickle.dumps((fn, args, kwargs), protocol=pickle.HIGHEST_PROTOCOL)
        self.start()
        assert self._pool is not None
        try:
            return self._pool.submit(_call, payload)
        except BrokenProcessPool:  # it died since: once more on a fresh child
            self.restart()
            assert self._pool is not None
            return self._pool.submit(_call, payload)

    def restart(self) -> None:
        """Drop the current child (dead or alive) and start a fresh one."""
        log.warning("training child process gone; starting a new one")
        self._shutdown(wait=False)
        self.start()

    def _shutdown(self, wait: bool) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=wait, cancel_futures=True)

    def close(self) -> None:
        """Stop the child, after the call it runs (if any) returned."""
        self._shutdown(wait=True)
