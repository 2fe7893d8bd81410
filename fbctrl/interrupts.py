"""Interrupts that arrive only between steps, so that a saved state is always a consistent one.

A long computation (pre-training, a unit of the paper protocol) holds state that one step
advances in several places: the random generators (a batch is drawn), the parameters and the
optimiser's moments. A Ctrl-C (SIGINT) or SIGTERM that lands inside a step would leave those
out of step with each other, and a resume file written then would resume to *different* numbers.
Inside :func:`deferred`, both signals are only noted; the loop calls :meth:`Deferred.check` at a
step boundary, which raises ``KeyboardInterrupt`` there, after the step has finished. A second
Ctrl-C while one is pending interrupts at once (the resume file then is the last periodic one,
which still resumes exactly). SIGKILL cannot be caught: the last periodic resume file is what
survives it, and it is consistent because it is written at a step boundary too.
"""

from __future__ import annotations

import signal
import threading
from contextlib import contextmanager

__all__ = ["Deferred", "deferred"]

_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Deferred:
    """Notes SIGINT / SIGTERM; :meth:`check` raises ``KeyboardInterrupt`` when one was noted."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self.at_boundary = False     # True once :meth:`check` raised (the state is consistent)

    def note(self, signum, frame) -> None:
        if self.signum is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt(f"signal {signum} (second)")
        self.signum = signum

    @property
    def pending(self) -> bool:
        return self.signum is not None

    def check(self) -> None:
        if self.signum is not None:
            self.at_boundary = True
            raise KeyboardInterrupt(f"signal {self.signum}")


@contextmanager
def deferred():
    """Defer SIGINT and SIGTERM to :meth:`Deferred.check` calls while the block runs.

    Outside the main thread (where Python cannot install handlers) the signals keep their
    handlers and ``check`` never raises: the caller's periodic saves are then what resumes."""
    d = Deferred()
    if threading.current_thread() is not threading.main_thread():
        yield d
        return
    old = {s: signal.getsignal(s) for s in _SIGNALS}
    for s in _SIGNALS:
        signal.signal(s, d.note)
    try:
        yield d
    finally:
        for s, h in old.items():
            signal.signal(s, h)
