"""Turn SIGTERM and Ctrl-C into a threading.Event for commands whose main thread waits while others work.

Why not `signal.signal(SIGTERM, lambda *_: stop.set())`: Python runs a handler in the main thread between two
bytecodes, which may be inside `stop.wait()` while it holds the Event's own lock; `set()` then waits for that
lock forever and the process ignores SIGTERM (seen in CI: `streamrec web` did not stop within 60 s). Here the
Python handler does nothing; the interpreter's C handler writes the signal's number to a wakeup pipe, whichever
thread the kernel chose, and a thread of our own reads it and sets the Event as ordinary code, holding no lock
that anything else can hold against it.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from types import FrameType

log = logging.getLogger(__name__)

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def stop_on_signals() -> threading.Event:
    """An Event set on the first SIGTERM or SIGINT; call from the main thread (Python's rule for handlers)."""
    read_end, write_end = os.pipe()
    os.set_blocking(write_end, False)  # the C handler must never block; the reader may
    for sig in STOP_SIGNALS:
        signal.signal(sig, _ignore_in_main_thread)
    signal.set_wakeup_fd(write_end, warn_on_full_buffer=False)
    stop = threading.Event()

    def take() -> None:
        while not stop.is_set():
            for number in os.read(read_end, 64):
                if number in STOP_SIGNALS:
                    log.info("%s received: stopping", signal.Signals(number).name)
                    stop.set()

    threading.Thread(target=take, name="stop-signals", daemon=True).start()
    return stop


def _ignore_in_main_thread(signum: int, frame: FrameType | None) -> None:
    """The work is done by the wakeup pipe's reader; installing a handler is what makes the pipe written."""
