"""A newcomer's first hour without a stack: every command that talks to one finds it through `--state-dir`, and
one that finds nothing listening says so in one line, not with librdkafka's retries and a traceback."""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from streamrec.cli import build_parser
from streamrec.devstack.cli_args import DEFAULT_STATE_DIR, Endpoint, chosen_state_dir, refusals

SCENARIO = "name: first-hour\nduration_s: 1\nreplay: {rate: 10}\ndata: {source: synthetic, sessions: 5}\n"


def dead_port() -> int:
    """A port nothing listens on: bound once to get a free one, then closed."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def write_stack(state_dir: Path, port: int) -> Path:
    state_dir.mkdir(parents=True, exist_ok=True)
    stack = {
        "kafka": f"127.0.0.1:{port}",
        "redis": f"redis://127.0.0.1:{port}/0",
        "grpc": f"127.0.0.1:{port}",
        "registry": "",
        "project": "firsthour",
        "pid": 1,
        "state_dir": str(state_dir),
        "processes": {},
    }
    (state_dir / "stack.json").write_text(json.dumps(stack))
    return state_dir


def streamrec(cwd: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    """The console script in `cwd` (so no stack.json of the checkout is found), without STREAMREC_* settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("STREAMREC_")}
    return subprocess.run(
        [sys.executable, "-m", "streamrec.cli", *argv], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )


def assert_one_clear_line(done: subprocess.CompletedProcess[str], address: str) -> None:
    lines = done.stderr.strip().splitlines()
    assert done.returncode != 0, done.stdout
    assert 1 <= len(lines) <= 3, done.stderr
    assert "cannot reach" in done.stderr and address in done.stderr, done.stderr
    assert "is the stack up? (streamrec up --detach)" in done.stderr
    assert "Traceback" not in done.stderr and "%3|" not in done.stderr, done.stderr


def test_replay_to_a_broker_not_listening(tmp_path: Path) -> None:
    address = f"127.0.0.1:{dead_port()}"
    done = streamrec(tmp_path, "replay", "--bootstrap", address, "--limit", "5", "--no-progress")
    assert_one_clear_line(done, address)
    assert f"cannot reach the broker at {address} (connection refused)" in done.stderr


def test_replay_reads_the_state_dir_and_explicit_bootstrap_wins(tmp_path: Path) -> None:
    in_file, given = dead_port(), dead_port()
    state_dir = write_stack(tmp_path / "stack", in_file)
    done = streamrec(tmp_path, "replay", "--state-dir", str(state_dir), "--limit", "5", "--no-progress")
    assert_one_clear_line(done, f"127.0.0.1:{in_file}")
    argv = ["replay", "--state-dir", str(state_dir), "--bootstrap", f"127.0.0.1:{given}", "--limit", "5"]
    done = streamrec(tmp_path, *argv)
    assert_one_clear_line(done, f"127.0.0.1:{given}")
    assert f":{in_file}" not in done.stderr


def test_replay_uses_up_s_default_stack_file(tmp_path: Path) -> None:
    port = dead_port()
    write_stack(tmp_path / DEFAULT_STATE_DIR, port)
    assert_one_clear_line(streamrec(tmp_path, "replay", "--limit", "5", "--no-progress"), f"127.0.0.1:{port}")


def test_status_of_a_stack_not_listening(tmp_path: Path) -> None:
    port = dead_port()
    done = streamrec(tmp_path, "status", "--state-dir", str(write_stack(tmp_path / "stack", port)))
    assert_one_clear_line(done, f"127.0.0.1:{port}")
    for part in ("the broker", "Redis", "the scorer"):
        assert f"{part} at 127.0.0.1:{port} (connection refused)" in done.stderr
    address = f"127.0.0.1:{dead_port()}"
    done = streamrec(tmp_path, "status", "--kafka", address, "--redis", f"redis://{address}/0", "--grpc", address)
    assert_one_clear_line(done, address)


def test_status_json_still_reports_a_document(tmp_path: Path) -> None:
    """Scripts reading `status --json` get `ok: false`, and librdkafka's lines stay off stderr there too."""
    done = streamrec(tmp_path, "status", "--json", "--state-dir", str(write_stack(tmp_path / "stack", dead_port())))
    assert done.returncode == 1 and json.loads(done.stdout)["ok"] is False
    assert "%3|" not in done.stderr and "Traceback" not in done.stderr, done.stderr


def test_loadtest_run_against_a_stack_not_listening(tmp_path: Path) -> None:
    port = dead_port()
    (tmp_path / "s.yaml").write_text(SCENARIO)
    state_dir = write_stack(tmp_path / "stack", port)
    argv = ["loadtest", "run", "s.yaml", "--state-dir", str(state_dir), "--out", str(tmp_path / "report")]
    assert_one_clear_line(streamrec(tmp_path, *argv), f"127.0.0.1:{port}")
    assert not (tmp_path / "report").exists()


def test_event_needs_no_stack(tmp_path: Path) -> None:
    """`streamrec event` only writes bytes for another client to send: it has no stack to find."""
    done = subprocess.run(
        [sys.executable, "-m", "streamrec.cli", "event", "--session", "s1", "--item", "i1"],
        cwd=tmp_path,
        capture_output=True,
        timeout=120,
    )
    assert done.returncode == 0 and done.stdout and not done.stderr


def _subcommand(*path: str) -> argparse.ArgumentParser:
    parser = build_parser()
    for name in path:
        action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        parser = action.choices[name]
    return parser


@pytest.mark.parametrize("path", [("replay",), ("status",), ("web",), ("loadtest", "run")])
def test_every_stack_command_takes_state_dir(path: tuple[str, ...]) -> None:
    assert "--state-dir" in _subcommand(*path).format_help()


def test_stack_dir_is_a_hidden_deprecated_alias(capsys: pytest.CaptureFixture[str]) -> None:
    run = _subcommand("loadtest", "run")
    assert "--stack-dir" not in run.format_help()
    assert run.parse_args(["s.yaml", "--stack-dir", "old"]).state_dir == Path("old")
    assert "--stack-dir is deprecated: use --state-dir" in capsys.readouterr().err
    assert run.parse_args(["s.yaml", "--state-dir", "new"]).state_dir == Path("new")


def test_which_stack_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert chosen_state_dir(None, addresses_given=False) is None  # no stack.json: the environment
    write_stack(tmp_path / DEFAULT_STATE_DIR, dead_port())
    assert chosen_state_dir(None, addresses_given=False) == DEFAULT_STATE_DIR
    assert chosen_state_dir(None, addresses_given=True) is None  # an address flag: not the default file
    assert chosen_state_dir(Path("elsewhere"), addresses_given=True) == Path("elsewhere")


def test_endpoints_never_show_a_password_and_skip_what_they_cannot_dial() -> None:
    port = dead_port()
    redis = Endpoint.redis(f"redis://app:hunter2@127.0.0.1:{port}/0")
    assert redis.shown == f"127.0.0.1:{port}"
    assert refusals([redis]) == [f"Redis at 127.0.0.1:{port} (connection refused)"]
    assert Endpoint.broker(f"PLAINTEXT://127.0.0.1:{port}, 127.0.0.1:{port + 1}").hosts == (
        ("127.0.0.1", port),
        ("127.0.0.1", port + 1),
    )
    assert Endpoint.scorer("unix:/run/scorer.sock").hosts == ()
    assert refusals([Endpoint.scorer("unix:/run/scorer.sock")]) == []  # not checked: the client reports it


def test_a_listening_port_is_reachable() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        address = f"127.0.0.1:{server.getsockname()[1]}"
        assert refusals([Endpoint.broker(f"127.0.0.1:{dead_port()},{address}"), Endpoint.scorer(address)]) == []
