"""SIGTERM and Ctrl-C stop a waiting main thread, including when they arrive while it holds the Event's lock."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# The window that hung `streamrec web` in CI: the main thread inside the Event's lock when the signal comes.
# A handler that calls `stop.set()` runs in the main thread at the next bytecode, inside that window, and
# waits for the lock forever; `stop_on_signals` sets the Event from its own thread once the lock is free.
SIGNAL_INSIDE_THE_LOCK = textwrap.dedent("""
    import os, signal, sys, threading, time
    from streamrec.signals import stop_on_signals

    stop = stop_on_signals()
    threading.Thread(target=time.sleep, args=(60,), daemon=True).start()  # the kernel may pick any thread
    with stop._cond:  # Event's lock: private, but it is the lock the old handler deadlocked on
        os.kill(os.getpid(), signal.{name})
        for _ in range(1000):
            time.sleep(0.0001)  # many bytecode boundaries where a Python handler would run
    print("stopped" if stop.wait(10) else "not stopped", flush=True)
""")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_stop_signal_inside_the_events_lock_still_stops(sig: signal.Signals) -> None:
    script = SIGNAL_INSIDE_THE_LOCK.format(name=sig.name)
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stdout.strip()) == (0, "stopped"), done.stderr


def test_other_signals_do_not_stop() -> None:
    script = textwrap.dedent("""
        import os, signal
        from streamrec.signals import stop_on_signals

        signal.signal(signal.SIGUSR1, lambda *_: None)  # handled, so its number reaches the wakeup pipe too
        stop = stop_on_signals()
        os.kill(os.getpid(), signal.SIGUSR1)
        print("stopped" if stop.wait(1) else "running", flush=True)
    """)
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stdout.strip()) == (0, "running"), done.stderr
