"""Commands in RESP, Redis's wire format: what every raw client of streamrec.redis writes on its socket."""

from __future__ import annotations

import hiredis

Command = tuple[bytes | str | int | float, ...]


def _encode(arg: bytes | str | int | float) -> bytes:
    if isinstance(arg, bytes):
        return arg
    if isinstance(arg, str):
        return arg.encode()
    return repr(arg).encode() if isinstance(arg, float) else str(arg).encode()


def pack(command: Command) -> bytes:
    """One command in RESP. hiredis does it in C (half the cost); it refuses other types than str, int, float
    and bytes (bool, numpy integers), which are then encoded here."""
    try:
        return hiredis.pack_command(command)  # type: ignore[arg-type]  # its stub types the tuple as one element
    except TypeError:
        args = [_encode(a) for a in command]
        return b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(arg), arg) for arg in args)
