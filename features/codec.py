"""Feast's Redis bytes without Feast: entity keys, hashed field names, and the Value/Timestamp protobuf wire format.

Hand-written because importing `feast.protos` imports the whole of Feast (seconds), and because a few byte
concatenations per value are faster than building protobuf messages. What Feast 0.67 writes, and so what we
must write byte for byte (tests compare against Feast itself):

    key    = serialize_entity_key(v3) + project      (feast.infra.key_encoding_utils, online_stores/helpers)
             <u32 1> <u32 STRING=2> <u32 len> join_key <u32 STRING=2> <u32 len> entity_id   (little-endian)
    field  = mmh3_32("{view}:{feature}", unsigned) as 4 little-endian bytes
    value  = feast.types.Value serialized (a oneof: exactly one field set, present even when zero)
    "_ts:{view}" = google.protobuf.Timestamp serialized (seconds, nanos; zero fields omitted)

None encodes as an empty Value (b""), which Feast reads back as null; so does a NaN double, as Feast's own
`push` does.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Callable, Iterable
from typing import Any

import mmh3

from streamrec.features.schema import Kind

STRING_VALUE_TYPE = 2  # feast.types.ValueType.STRING
MASK64 = (1 << 64) - 1

Encoder = Callable[[Any], bytes]
Decoder = Callable[[bytes | None], Any]

_ONE_BYTE = [bytes((i,)) for i in range(128)]
_SMALL_INT64 = [b"\x20" + b for b in _ONE_BYTE]  # int64_val of 0..127, the commonest values
_PACK_D = struct.Struct("<d").pack
_UNPACK_D = struct.Struct("<d").unpack_from
_UNPACK_F = struct.Struct("<f").unpack_from
_PACK_U32 = struct.Struct("<I").pack


# -- keys and fields ---------------------------------------------------------------------------------------
def entity_key_prefix(join_key: str) -> bytes:
    """The part of a serialized single-string entity key before the entity value's length."""
    name = join_key.encode()
    return _PACK_U32(1) + _PACK_U32(STRING_VALUE_TYPE) + _PACK_U32(len(name)) + name + _PACK_U32(STRING_VALUE_TYPE)


def redis_key(prefix: bytes, entity_id: str, project_suffix: bytes) -> bytes:
    value = entity_id.encode()
    return prefix + _PACK_U32(len(value)) + value + project_suffix


def hashed_field(view: str, feature: str) -> bytes:
    return _PACK_U32(mmh3.hash(f"{view}:{feature}", signed=False))


def ts_field(view: str) -> bytes:
    return f"_ts:{view}".encode()


# -- varints -------------------------------------------------------------------------------------------------
def varint(n: int) -> bytes:
    if n < 0x80:
        return _ONE_BYTE[n]
    if n < 0x4000:  # counts and lengths mostly fit two bytes: skip the loop
        return bytes(((n & 0x7F) | 0x80, n >> 7))
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def read_varint(buf: bytes, pos: int) -> tuple[int, int]:
    """The unsigned varint at `pos` and the position after it."""
    result = shift = 0
    while True:
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7


def _signed64(n: int) -> int:
    return n - (1 << 64) if n >= 1 << 63 else n


# -- encoders: one per kind ------------------------------------------------------------------------------------
def _enc_string(v: str | None) -> bytes:
    if v is None:
        return b""
    b = v.encode()
    return b"\x12" + varint(len(b)) + b


def _enc_int64(v: int | None) -> bytes:
    if v is None:
        return b""
    n = int(v)
    if 0 <= n < 0x80:
        return _SMALL_INT64[n]
    return b"\x20" + varint(n & MASK64)


def _enc_double(v: float | None) -> bytes:
    if v is None or math.isnan(v):
        return b""
    return b"\x29" + _PACK_D(v)


def _enc_bool(v: bool | None) -> bytes:
    if v is None:
        return b""
    return b"\x38\x01" if v else b"\x38\x00"  # bool_val (7) is in a oneof: present even when false


def _enc_string_list(v: Iterable[str] | None) -> bytes:
    if v is None:
        return b""
    if isinstance(v, str):  # would otherwise be stored silently as a list of its characters
        raise TypeError(f"expected a list of strings, got the string {v!r}")
    one = _ONE_BYTE
    encoded = [s.encode() for s in v]
    # ids are short: a one-byte length without the varint call
    inner = b"".join([b"\x0a" + one[len(b)] + b if len(b) < 0x80 else b"\x0a" + varint(len(b)) + b for b in encoded])
    return b"\x62" + varint(len(inner)) + inner


def _enc_int64_list(v: Iterable[int] | None) -> bytes:
    if v is None:
        return b""
    packed = b"".join([varint(int(x) & MASK64) for x in v])
    inner = b"\x0a" + varint(len(packed)) + packed if packed else b""  # proto3 omits an empty packed field
    return b"\x72" + varint(len(inner)) + inner


ENCODERS: dict[Kind, Encoder] = {
    "string": _enc_string,
    "int64": _enc_int64,
    "double": _enc_double,
    "bool": _enc_bool,
    "string_list": _enc_string_list,
    "int64_list": _enc_int64_list,
}


def encode_timestamp_ms(ts_ms: int) -> bytes:
    seconds, millis = divmod(ts_ms, 1000)  # floor division keeps nanos non-negative, as protobuf requires
    out = b""
    if seconds:
        out += b"\x08" + varint(seconds & MASK64)
    if millis:
        out += b"\x10" + varint(millis * 1_000_000)
    return out


def decode_timestamp_ms(buf: bytes | None) -> int | None:
    if not buf:
        return None
    seconds = nanos = 0
    pos, end = 0, len(buf)
    while pos < end:
        tag, pos = read_varint(buf, pos)
        n, pos = read_varint(buf, pos)
        if tag == 0x08:
            seconds = _signed64(n)
        elif tag == 0x10:
            nanos = n
    return seconds * 1000 + nanos // 1_000_000


# -- decoders --------------------------------------------------------------------------------------------------
def _repeated(buf: bytes, pos: int, end: int, wire_packed: Callable[[bytes, int, int], list[Any]]) -> list[Any]:
    """Field 1 of a *List message between pos and end: packed (wire type 2) or one element per tag."""
    out: list[Any] = []
    while pos < end:
        tag, pos = read_varint(buf, pos)
        if tag == 0x0A:
            n, pos = read_varint(buf, pos)
            out.extend(wire_packed(buf, pos, pos + n))
            pos += n
        elif tag == 0x08:  # unpacked varint element
            n, pos = read_varint(buf, pos)
            out.append(n)
        elif tag == 0x09:  # unpacked fixed64 element
            out.append(_UNPACK_D(buf, pos)[0])
            pos += 8
        elif tag == 0x0D:  # unpacked fixed32 element
            out.append(_UNPACK_F(buf, pos)[0])
            pos += 4
        else:
            raise ValueError(f"unexpected tag {tag} inside a list value")
    return out


def _packed_varints(buf: bytes, pos: int, end: int) -> list[int]:
    out = []
    while pos < end:
        n, pos = read_varint(buf, pos)
        out.append(_signed64(n))
    return out


def _packed_doubles(buf: bytes, pos: int, end: int) -> list[float]:
    return list(struct.unpack_from(f"<{(end - pos) // 8}d", buf, pos))


def _packed_floats(buf: bytes, pos: int, end: int) -> list[float]:
    return list(struct.unpack_from(f"<{(end - pos) // 4}f", buf, pos))


def _one_chunk(buf: bytes, pos: int, end: int) -> list[bytes]:
    return [buf[pos:end]]


def _strings(buf: bytes, pos: int, end: int) -> list[str]:
    out: list[str] = []
    append = out.append
    while pos < end:
        n = buf[pos + 1]  # buf[pos] is tag 0x0a: field 1, length-delimited
        if n < 0x80:  # ids are short: skip the varint call
            pos += 2
        else:
            n, pos = read_varint(buf, pos + 1)
        append(buf[pos : pos + n].decode())
        pos += n
    return out


def _bytes_list(buf: bytes, pos: int, end: int) -> list[bytes]:
    out = []
    while pos < end:
        pos += 1
        n, pos = read_varint(buf, pos)
        out.append(buf[pos : pos + n])
        pos += n
    return out


_LISTS: dict[int, Callable[[bytes, int, int], list[Any]]] = {
    11: _bytes_list,
    12: _strings,
    13: _packed_varints,
    14: _packed_varints,
    15: _packed_doubles,
    16: _packed_floats,
    17: _packed_varints,
    18: _packed_varints,
}


def decode_value(buf: bytes | None) -> Any:
    """A serialized feast.types.Value → Python (str, int, float, bool, bytes or a list of them); null → None."""
    if not buf:
        return None
    tag, pos = read_varint(buf, 0)
    field, wire = tag >> 3, tag & 7
    if wire == 0:
        n, _ = read_varint(buf, pos)
        if field == 7:
            return bool(n)
        if field == 19:  # null_val
            return None
        if field == 3:
            n &= 0xFFFFFFFF
            return n - (1 << 32) if n >= 1 << 31 else n
        return _signed64(n)  # int64_val (4), unix_timestamp_val (8)
    if wire == 1:
        return _UNPACK_D(buf, pos)[0]
    if wire == 5:
        return _UNPACK_F(buf, pos)[0]
    n, pos = read_varint(buf, pos)
    if field == 2:
        return buf[pos : pos + n].decode()
    if field == 1:
        return buf[pos : pos + n]
    if field in _LISTS:
        inner = _LISTS[field]
        if field in (12, 11):
            return inner(buf, pos, pos + n)
        return _repeated(buf, pos, pos + n, inner)
    raise ValueError(f"unsupported feast Value field {field}")


def _dec_int64(buf: bytes | None) -> Any:
    # A valid int64_val is exactly tag 0x20 then one varint: decode it inline, it is the most common value.
    if buf and buf[0] == 0x20:
        n = buf[1]
        if n < 0x80:
            return n
        shift = 0
        n = 0
        for byte in buf[1:]:
            n |= (byte & 0x7F) << shift
            shift += 7
        return n - (1 << 64) if n >= 1 << 63 else n
    return decode_value(buf)


def _dec_double(buf: bytes | None) -> Any:
    if buf and buf[0] == 0x29:
        return _UNPACK_D(buf, 1)[0]
    return decode_value(buf)


def _dec_string(buf: bytes | None) -> Any:
    if buf and buf[0] == 0x12 and buf[1] < 0x80:
        return buf[2:].decode()
    return decode_value(buf)


DECODERS: dict[Kind, Decoder] = {
    "string": _dec_string,
    "int64": _dec_int64,
    "double": _dec_double,
    "bool": decode_value,
    "string_list": decode_value,
    "int64_list": decode_value,
}

__all__ = [
    "DECODERS",
    "ENCODERS",
    "decode_timestamp_ms",
    "decode_value",
    "encode_timestamp_ms",
    "entity_key_prefix",
    "hashed_field",
    "redis_key",
    "ts_field",
]
