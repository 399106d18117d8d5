"""Where the commands that talk to a running stack find it (`--state-dir`, stack.json), and whether it answers.

`streamrec up` writes the addresses of its stack to DIR/stack.json (DIR is .streamrec/stack unless told
otherwise). A command given `--state-dir DIR` reads them from there; address flags given as well win, field by
field. Given neither, a command reads .streamrec/stack/stack.json when it exists, else the STREAMREC_*
environment. Before a client library prints pages of retries, `require_reachable` opens one TCP connection to
each address and raises one StackError naming the address and the reason. librdkafka's own log lines go to
`kafka_logger()`, which passes them on only with `streamrec -v`.
"""

from __future__ import annotations

import argparse
import logging
import socket
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from streamrec.devstack.stack import STACK_FILE, StackAddresses
from streamrec.errors import ConfigError, StackError

DEFAULT_STATE_DIR = Path(".streamrec/stack")  # `streamrec up`'s default
CONNECT_TIMEOUT_S = 1.0  # a listening port on this machine or the next answers far sooner
UP_HINT = "is the stack up? (streamrec up --detach)"
STATE_DIR_HELP = (
    f"a stack started by `streamrec up`: addresses from DIR/{STACK_FILE} (default {DEFAULT_STATE_DIR} when its "
    f"{STACK_FILE} exists and no address is given, else the STREAMREC_* environment)"
)
REDIS_PORT = 6379


def add_state_dir_argument(
    parser: argparse.ArgumentParser, help: str = STATE_DIR_HELP, deprecated_alias: str | None = None
) -> None:
    """`--state-dir DIR` (dest `state_dir`, default None); `deprecated_alias` sets the same dest, unlisted."""
    parser.add_argument("--state-dir", type=Path, default=None, metavar="DIR", help=help)
    if deprecated_alias:
        parser.add_argument(
            deprecated_alias, dest="state_dir", type=Path, action=_Deprecated, default=None, help=argparse.SUPPRESS
        )


class _Deprecated(argparse.Action):
    """Stores like the option it stands for, after one line on stderr naming that option."""

    def __call__(
        self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any, option: str | None = None
    ) -> None:
        print(f"{parser.prog}: {option} is deprecated: use --state-dir", file=sys.stderr)
        setattr(namespace, self.dest, values)


def chosen_state_dir(state_dir: Path | None, addresses_given: bool) -> Path | None:
    """The state dir whose stack.json to read: the one named; else, when no address flag was given either, the
    default one if its stack.json exists; else None (the environment and the flags)."""
    if state_dir is not None:
        return state_dir
    if not addresses_given and (DEFAULT_STATE_DIR / STACK_FILE).is_file():
        return DEFAULT_STATE_DIR
    return None


def read_stack(state_dir: Path) -> StackAddresses:
    """The addresses in `state_dir`/stack.json; a ConfigError saying how to start a stack when there is none."""
    path = state_dir / STACK_FILE
    try:
        return StackAddresses.read(state_dir)
    except FileNotFoundError:
        raise ConfigError(f"{path} not found: no stack is running there (start one: streamrec up --detach)") from None
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{path} is not a stack file: {exc}") from None


def stack_addresses(state_dir: Path | None, addresses_given: bool) -> StackAddresses | None:
    """`read_stack` of `chosen_state_dir`, or None when the environment and the flags say where the stack is."""
    chosen = chosen_state_dir(state_dir, addresses_given)
    return None if chosen is None else read_stack(chosen)


@dataclass(frozen=True)
class Endpoint:
    """One service of a stack as a refusal names it ("the broker at ..."), with the host:port pairs to try."""

    what: str
    shown: str  # never a password: a Redis URL is shown as host:port
    hosts: tuple[tuple[str, int], ...]  # reachable when any answers; none known (a unix socket): not checked

    @classmethod
    def broker(cls, bootstrap: str) -> Endpoint:
        return cls("the broker", bootstrap, _host_ports(bootstrap))

    @classmethod
    def scorer(cls, address: str) -> Endpoint:
        return cls("the scorer", address, _host_ports(address))

    @classmethod
    def redis(cls, url: str) -> Endpoint:
        try:
            parts = urlsplit(url)
            host, port = parts.hostname, parts.port or REDIS_PORT
        except ValueError:
            return cls("Redis", "?", ())
        if parts.scheme not in ("redis", "rediss") or not host:
            return cls("Redis", parts.scheme + "://...", ())
        return cls("Redis", f"{host}:{port}", ((host, port),))

    def refusal(self, timeout_s: float = CONNECT_TIMEOUT_S) -> str | None:
        """Why no host of this endpoint accepts a TCP connection (the first one's reason), or None."""
        reasons = [_refusal(host, port, timeout_s) for host, port in self.hosts]
        return reasons[0] if reasons and all(reasons) else None


def refusals(endpoints: Sequence[Endpoint], timeout_s: float = CONNECT_TIMEOUT_S) -> list[str]:
    """For each endpoint that accepts no connection, a phrase like "the broker at HOST:PORT (connection refused)"."""
    found = ((e, e.refusal(timeout_s)) for e in endpoints)
    return [f"{e.what} at {e.shown} ({reason})" for e, reason in found if reason]


def cannot_reach(refused: Sequence[str]) -> StackError:
    """The one error for those refusals, ending with how to start a stack."""
    return StackError(f"cannot reach {', '.join(refused)}; {UP_HINT}")


def require_reachable(*endpoints: Endpoint, timeout_s: float = CONNECT_TIMEOUT_S) -> None:
    """Raise one StackError naming every endpoint that accepts no TCP connection."""
    refused = refusals(endpoints, timeout_s)
    if refused:
        raise cannot_reach(refused)


def kafka_logger() -> logging.Logger:
    """For confluent-kafka's `logger` setting: librdkafka's lines (each failed connect, every retry) are shown
    only when debug logging is on (`streamrec -v`); the client's errors still reach the caller."""
    logger = logging.getLogger("streamrec.librdkafka")
    logger.setLevel(logging.NOTSET if logging.getLogger().isEnabledFor(logging.DEBUG) else logging.CRITICAL + 1)
    return logger


def _host_ports(addresses: str) -> tuple[tuple[str, int], ...]:
    """host:port pairs of a comma-separated list (Kafka bootstrap, gRPC targets); a scheme prefix is dropped,
    and an entry without a numeric port (a unix socket, a resolver name) is left out."""
    pairs = []
    for entry in addresses.split(","):
        entry = entry.strip()
        if "://" in entry:
            entry = entry.split("://", 1)[1].lstrip("/")
        entry = entry.removeprefix("ipv4:").removeprefix("ipv6:")
        host, _, port = entry.rpartition(":")
        if host and port.isdigit():
            pairs.append((host.strip("[]"), int(port)))
    return tuple(pairs)


def _refusal(host: str, port: int, timeout_s: float) -> str | None:
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return None
    except ConnectionRefusedError:
        return "connection refused"
    except TimeoutError:
        return f"no answer within {timeout_s:g} s"
    except socket.gaierror:
        return f"unknown host {host}"
    except OSError as exc:
        return (exc.strerror or str(exc)).lower()
