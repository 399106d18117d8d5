"""The scorer's listening port: a clear error when it is taken, and a port held for a `--processes` group.

gRPC turns SO_REUSEPORT on for its listeners by default, so a second scorer on a port in use would bind it
without error and take half of the new connections (with other tokens, or none). A lone scorer therefore listens
with `grpc.so_reuseport` 0. A group shares its port only with its own children: the parent binds the port
without SO_REUSEPORT, so the bind fails when anyone holds it, and only then turns SO_REUSEPORT on so that its
children (`grpc.so_reuseport` 1) can join. The parent's socket never listens, so it takes no connections; it
keeps the port for the group while a child restarts. A second scorer or a second group finds the port in use.
"""

from __future__ import annotations

import errno
import socket

from streamrec.errors import ConfigError


def bind_error(host: str, port: int) -> ConfigError:
    """Why host:port cannot be listened on, in one line: in use, or not an address of this host."""
    try:
        probe = _bound(host, port)
    except ConfigError as error:
        return error
    probe.close()
    return ConfigError(f"cannot listen on {host}:{port} (GRPC_VERBOSITY=debug shows gRPC's reason)")


def reserve(host: str, port: int) -> socket.socket:
    """Hold host:port (0: a free one) for a group of scorer processes; ConfigError when the port is in use."""
    reservation = _bound(host, port)
    reservation.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)  # now the group's children may join
    return reservation


def _bound(host: str, port: int) -> socket.socket:
    plain = host.strip("[]")
    family = socket.AF_INET6 if ":" in plain else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.bind((plain, port))  # without SO_REUSEPORT: fails when anyone holds the port
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise ConfigError(
                f"cannot listen on {host}:{port}: the port is in use (another scorer? `streamrec serve "
                "--processes N` runs several on one port)"
            ) from None
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    return sock
