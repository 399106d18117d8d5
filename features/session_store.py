"""Redis layout of session state and refreshed recommendations: keys, TTLs and encodings, in one place.

Keys (all under the project namespace, so tests and tenants never collide):

    {project}:session:{{session_id}}   JSON SessionState, TTL `SESSION_TTL_S` (features/schema.py)
    {project}:recs:{{session_id}}      JSON Recommendations (with the serialized answer), TTL `SESSION_TTL_S`

The worker writes both; the scorer reads both with one MGET per page view. The session id in braces is a
Redis Cluster hash tag: both keys of a session are in one slot, so that MGET works on a cluster too.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass, field

import orjson

from streamrec.features.schema import MAX_RECENT_ITEMS

# Set a key only if the stored value's leading {"offset":N} is not newer: a worker that lost its partition in a
# rebalance and still finishes a batch cannot overwrite what the partition's new owner wrote since. Offsets of
# two partitions do not compare: a state whose head names another partition than the new one (written before
# sessions were routed to one partition, or before the topic grew) is replaced.
PUT_IF_NEWER = """
local current = redis.call('GET', KEYS[1])
if current then
  local stored = tonumber(string.match(current, '^{"offset":(%-?%d+)'))
  local head = '^{"offset":%-?%d+,"partition":(%-?%d+)'
  local same_partition = string.match(current, head) == string.match(ARGV[1], head)
  if stored and stored > tonumber(ARGV[2]) and same_partition then return 0 end
end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[3])
return 1
"""

# The start of SessionState.to_json: offset, partition, updated_ms (field order is part of the layout)
STATE_HEAD = re.compile(rb'^\{"offset":-?\d+,"partition":(-?\d+),"updated_ms":(\d+)')
MAX_SESSION_ITEMS = MAX_RECENT_ITEMS  # the session's viewed items, carts and purchases are capped alike
MAX_SESSION_QUERIES = 10  # the session's last search queries


def session_key(project: str, session_id: str) -> str:
    return f"{project}:session:{{{session_id}}}"


def recs_key(project: str, session_id: str) -> str:
    return f"{project}:recs:{{{session_id}}}"


@dataclass
class SessionState:
    """What the worker knows of one session; `items` oldest first, at most MAX_SESSION_ITEMS.

    `offset` (first, so a Redis script can read it without decoding JSON) is the offset of the last record
    applied, on the session's `partition`; writes are fenced by it (`PUT_IF_NEWER`). `partition` and
    `updated_ms` follow, so the worker can find idle sessions in its table without decoding them
    (`STATE_HEAD`). `seen` holds the last event ids with the record they came in (`id@partition:offset`) for
    deduplication. `queries` holds the last MAX_SESSION_QUERIES search queries, newest last (absent from states
    written before search events existed, which load with none).
    """

    offset: int = -1
    partition: int = -1
    updated_ms: int = 0
    items: list[str] = field(default_factory=list)
    carts: list[str] = field(default_factory=list)
    purchases: list[str] = field(default_factory=list)
    user_id: str = ""
    last_category: str = ""
    last_event_id: str = ""
    last_ts_ms: int = 0
    events: int = 0
    clicks: int = 0  # views and clicks
    cart_adds: int = 0
    purchase_count: int = 0
    seen: list[str] = field(default_factory=list)
    queries: list[str] = field(default_factory=list)

    def to_json(self) -> str:
        return self.to_json_bytes().decode()

    def to_json_bytes(self) -> bytes:
        return orjson.dumps(self.__dict__)

    @classmethod
    def from_json(cls, raw: str | bytes) -> SessionState:
        data = orjson.loads(raw)
        try:
            return cls(**data)
        except TypeError:  # written by another version: fields it had and this one lacks are dropped
            return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})


def partition_and_update(value: bytes | None) -> tuple[int, int]:
    """A stored state's partition and last update, read from the head of its JSON without decoding the rest."""
    if not value:
        return 0, 0
    head = STATE_HEAD.match(value)
    if head is not None:
        return int(head[1]), int(head[2])
    state = SessionState.from_json(value)  # written by a version with another field order
    return max(state.partition, 0), state.updated_ms


@dataclass
class Recommendations:
    """A refreshed top-k list and the event that caused it (`offset`: that event's record, for fencing).

    `wire` is the same list as the scorer serialized it for a page view (RecommendResponse.items entries,
    base64), served as it is while the session has not moved on (serving/prebuilt.py); empty when the scorer
    sent none (a list of popular items only, or a scorer that predates it).
    """

    offset: int
    items: list[tuple[str, float]]
    model_version: str
    event_id: str
    event_ts_ms: int
    refreshed_ms: int
    wire: str = ""

    @staticmethod
    def encode_wire(entries: bytes) -> str:
        return base64.b64encode(entries).decode() if entries else ""

    def entries(self) -> bytes:
        return base64.b64decode(self.wire)

    def to_json(self) -> str:
        return orjson.dumps(self.__dict__).decode()

    @classmethod
    def from_json(cls, raw: str | bytes) -> Recommendations:
        data = orjson.loads(raw)
        data["items"] = list(map(tuple, data["items"]))  # [item, score] pairs, as to_json wrote them
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})
