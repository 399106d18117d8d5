"""The live page when nothing answers: it still serves, says what is down, and answers 503 rather than failing."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from streamrec.devstack.localstack import free_port
from streamrec.observe.config import ObserveSettings, Targets
from streamrec.observe.web import STATIC, WebServer, start_stack_web, start_web

DEAD = Targets(
    kafka=f"127.0.0.1:{free_port()}",
    redis=f"redis://127.0.0.1:{free_port()}/0",
    grpc=f"127.0.0.1:{free_port()}",
    project="nothing",
)
QUIET = ObserveSettings(check_timeout_s=0.5, recommend_probes_per_s=0)


@pytest.fixture(scope="module")
def dead_page() -> Iterator[WebServer]:
    server = start_web(DEAD, 0, settings=QUIET)
    yield server
    server.stop()


def get(url: str) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(url, timeout=30) as reply:
            body = reply.read()
            return reply.status, json.loads(body) if reply.headers.get_content_type() == "application/json" else body
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_pages_are_served_without_anything_from_outside(dead_page: WebServer) -> None:
    for path in ("/", "/store", "/static/live.js", "/static/store.js", "/static/chart.js", "/static/style.css"):
        code, body = get(dead_page.url + path)
        assert code == 200 and body, path
    for page in Path(STATIC).iterdir():  # no CDN, no web font: the machine may have no internet
        assert not re.search(r"(src|href)=\"(https?:)?//", page.read_text()), page.name


def test_down_dependencies_are_reported_not_raised(dead_page: WebServer) -> None:
    assert get(dead_page.url + "/healthz") == (200, {"ok": True})
    code, status = get(dead_page.url + "/api/status")
    assert code == 200 and status["ok"] is False
    assert {name for name, c in status["components"].items() if c["state"] == "down"} >= {"broker", "redis", "scorer"}
    code, body = get(dead_page.url + "/api/catalogue")
    assert code == 503 and "scorer" in body["error"]
    code, body = get(dead_page.url + "/api/sessions/someone")
    assert code == 503 and body["error"]
    code, live = get(dead_page.url + "/api/live")
    assert code == 200 and "series" in live


def test_a_busy_port_falls_back_to_a_free_one() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(OSError, match="could not start"):
            start_web(DEAD, port, settings=QUIET)
        server = start_stack_web(DEAD, QUIET.model_copy(update={"web_port": port}))
        try:
            assert server.port != port and get(server.url + "/healthz")[0] == 200
        finally:
            server.stop()
    assert not [t for t in threading.enumerate() if t.name == "observe-tail" and t.is_alive()][1:]


def test_web_command_runs_until_terminated(tmp_path: Path) -> None:
    """`streamrec web` as its own process: prints where it listens, serves, and stops on SIGTERM."""
    argv = [
        sys.executable,
        "-m",
        "streamrec.observe.cli",
        "web",
        "--port",
        "0",
        "--kafka",
        DEAD.kafka,
        "--redis",
        DEAD.redis,
        "--grpc",
        DEAD.grpc,
    ]
    env = {**os.environ, "STREAMREC_OBSERVE_RECOMMEND_PROBES_PER_S": "0"}
    stderr_path = tmp_path / "web.stderr"
    with stderr_path.open("w") as stderr:
        process = subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=stderr, text=True, env=env, cwd=Path(__file__).resolve().parents[2]
        )

    def log_tail() -> str:
        return "\n".join(stderr_path.read_text().splitlines()[-20:])

    try:
        assert process.stdout is not None
        first = process.stdout.readline()
        assert first.startswith("{"), f"expected the addresses as JSON, got {first!r}; stderr:\n{log_tail()}"
        urls = json.loads(first)
        assert get(urls["live"] + "healthz") == (200, {"ok": True})
        assert urls["store"].endswith("/store")
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            code = process.wait(timeout=60)  # a busy CI machine: normally about a second
        except subprocess.TimeoutExpired:
            process.kill()
            raise AssertionError(f"streamrec web did not stop within 60 s of SIGTERM; stderr:\n{log_tail()}") from None
    assert code == 0, f"exit code {code}; stderr:\n{log_tail()}"
