"""`streamrec up --detach` serves the live page and writes metrics endpoints; `streamrec status` reads them.

This is the path a user takes: start the stack, ask for its status, open the page it printed, stop it.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from streamrec.cli import build_parser
from streamrec.devstack.stack import StackAddresses

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def streamrec(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "streamrec.cli", *args], capture_output=True, text=True, timeout=timeout, cwd=ROOT
    )


def test_console_script_has_status_and_web() -> None:
    parser = build_parser()
    for command in (["status", "--json"], ["web", "--port", "0"]):
        assert parser.parse_args(command).handler.__module__ == "streamrec.observe.cli"


def test_up_serves_the_live_page_and_status_sees_everything(trained_registry: Path, tmp_path: Path) -> None:
    state_dir = tmp_path / "stack"
    shutil.copytree(trained_registry, state_dir / "registry")  # skip training: the model is given
    started = streamrec("up", "--detach", "--state-dir", str(state_dir))
    assert started.returncode == 0, started.stderr + started.stdout
    try:
        addresses = StackAddresses.read(state_dir)
        assert set(addresses.metrics) == {"scorer", "worker"} and addresses.web.startswith("http://127.0.0.1:")
        with urllib.request.urlopen(f"{addresses.web}/api/status", timeout=30) as reply:
            assert json.loads(reply.read())["components"]["scorer"]["health"] == "SERVING"
        # status is eventually consistent: a worker shows once its first heartbeat (1 s period) has landed
        deadline = time.monotonic() + 30
        done = streamrec("status", "--json", "--state-dir", str(state_dir), timeout=60)
        while done.returncode != 0 and time.monotonic() < deadline:
            time.sleep(1)
            done = streamrec("status", "--json", "--state-dir", str(state_dir), timeout=60)
        assert done.returncode == 0, done.stdout + done.stderr
        report = json.loads(done.stdout)
        assert report["ok"] and {c["state"] for c in report["components"].values()} == {"up"}
        assert list(report["components"]["workers"]["metrics"].values()) == [True]
        assert list(report["components"]["scorer"]["metrics"].values()) == [True]
    finally:
        stopped = streamrec("down", "--state-dir", str(state_dir), timeout=60)
    assert stopped.returncode == 0, stopped.stderr
    assert streamrec("status", "--state-dir", str(state_dir), timeout=60).returncode == 1
