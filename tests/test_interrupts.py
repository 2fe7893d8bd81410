"""Interrupts deferred to a step boundary (fbctrl.interrupts): inside ``deferred()`` a SIGINT or
SIGTERM is only noted, the step in progress finishes, and ``check()`` raises KeyboardInterrupt
at the boundary; a second SIGINT interrupts at once; the handlers are restored after the block;
outside the main thread nothing is installed and ``check()`` never raises.

Each test first installs its own handlers (raising ``Delivered``), so an implementation that
failed to defer gives a clean failure instead of stopping or killing the test run."""

from __future__ import annotations

import signal
import threading

import pytest

from fbctrl.interrupts import Deferred, deferred


class Delivered(Exception):
    """The signal reached the handler that was installed before ``deferred()``."""


@pytest.fixture
def own_handlers():
    def handler(signum, frame):
        raise Delivered(signum)

    old = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    yield handler
    for s, h in old.items():
        signal.signal(s, h)


def _step(d: Deferred, signum: int) -> list[int]:
    """A step that receives ``signum`` half-way and must still run to its end."""
    done = [1]
    signal.raise_signal(signum)
    done.append(2)
    assert d.pending and d.signum == signum
    done.append(3)
    return done


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_inside_a_step_is_raised_at_the_boundary(own_handlers, signum):
    with deferred() as d:
        assert not d.pending
        d.check()                                   # nothing noted: the loop goes on
        assert _step(d, signum) == [1, 2, 3]        # the step finished although the signal came
        assert not d.at_boundary
        with pytest.raises(KeyboardInterrupt, match=f"signal {int(signum)}"):
            d.check()
        assert d.at_boundary
    assert signal.getsignal(signal.SIGINT) is own_handlers and signal.getsignal(signal.SIGTERM) is own_handlers


def test_a_second_sigint_interrupts_at_once(own_handlers):
    with deferred() as d:
        signal.raise_signal(signal.SIGINT)
        with pytest.raises(KeyboardInterrupt, match="second"):
            signal.raise_signal(signal.SIGINT)
        assert not d.at_boundary                    # not at a boundary: the last periodic save resumes
    # after the block the signal reaches the handler that was there before
    with pytest.raises(Delivered):
        signal.raise_signal(signal.SIGINT)


def test_outside_the_main_thread_nothing_is_installed(own_handlers):
    """Python installs handlers only in the main thread: a worker's block leaves them alone."""
    seen = {}

    def worker():
        with deferred() as d:
            seen["handler"] = signal.getsignal(signal.SIGINT)
            d.check()
            seen["pending"] = d.pending

    t = threading.Thread(target=worker)
    t.start()
    t.join()
    assert seen == {"handler": own_handlers, "pending": False}
    assert signal.getsignal(signal.SIGINT) is own_handlers
