"""Which partition of the events topic owns a session: Kafka's default partitioner, murmur2 of the key.

The Java client (and librdkafka's `murmur2_random`) put a keyed record on `(murmur2(key) & 0x7fffffff) % n`;
the worker applies a session's events on that partition only, whatever partitioner their producer used, and
forwards the others there (docs/streaming.md, "Producers and partitioners").
"""

from __future__ import annotations

import struct
from functools import lru_cache

_SEED = 0x9747B28C
_M = 0x5BD1E995
_MASK = 0xFFFFFFFF
_WORDS = struct.Struct("<I")


def murmur2(data: bytes) -> int:
    """Kafka's murmur2 (`org.apache.kafka.common.utils.Utils.murmur2`), as Java's signed 32-bit int."""
    length = len(data)
    h = _SEED ^ length
    body = length & ~3
    for (k,) in _WORDS.iter_unpack(data[:body]):
        k = (k * _M) & _MASK
        k ^= k >> 24
        h = ((h * _M) & _MASK) ^ ((k * _M) & _MASK)
    tail = length & 3
    if tail == 3:
        h ^= data[body + 2] << 16
    if tail >= 2:
        h ^= data[body + 1] << 8
    if tail >= 1:
        h = ((h ^ data[body]) * _M) & _MASK
    h ^= h >> 13
    h = (h * _M) & _MASK
    h ^= h >> 15
    return h - 0x100000000 if h & 0x80000000 else h


@lru_cache(maxsize=65_536)  # a session sends several events: most records find their partition here
def owner_partition(session_id: str, partitions: int) -> int:
    """The partition a murmur2 producer puts `session_id`'s records on, of `partitions`."""
    return (murmur2(session_id.encode()) & 0x7FFFFFFF) % partitions
