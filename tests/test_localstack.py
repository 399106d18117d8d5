"""LocalStack's process hygiene: what it starts goes away with it, even when it is killed with no chance to stop."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from streamrec.localstack import LocalStack

# A parent that starts one long-sleeping child through LocalStack, prints the child's pid and waits to be killed.
PARENT = """
import sys, time
from pathlib import Path
from streamrec.localstack import LocalStack
stack = LocalStack(state_dir=Path(sys.argv[1]))
service = stack.spawn("sleeper", ["sleep", "300"], "none", ready=lambda: True)
print(service.process.pid, flush=True)
time.sleep(300)
"""


def alive(pid: int) -> bool:
    """True while `pid` exists and is not a zombie waiting for its (new) parent to reap it."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def test_children_die_when_the_parent_is_killed(tmp_path: Path) -> None:
    parent = subprocess.Popen(
        [sys.executable, "-c", PARENT, str(tmp_path)], stdout=subprocess.PIPE, text=True, cwd=Path.cwd()
    )
    assert parent.stdout is not None
    child = int(parent.stdout.readline())
    assert alive(child)
    os.kill(parent.pid, signal.SIGKILL)
    parent.wait()
    deadline = time.monotonic() + 10
    while alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    if alive(child):
        os.kill(child, signal.SIGKILL)
        pytest.fail("the child outlived its parent's kill -9")


def test_stop_ends_every_child(tmp_path: Path) -> None:
    with LocalStack(state_dir=tmp_path) as stack:
        pids = [stack.spawn(f"sleeper{n}", ["sleep", "300"], "none", ready=lambda: True).process.pid for n in (1, 2)]
        assert all(alive(pid) for pid in pids)
    assert not any(alive(pid) for pid in pids)
