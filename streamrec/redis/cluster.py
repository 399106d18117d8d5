"""The engines' Redis Cluster client: pipelines split by slot over the primaries, redirects, failover, WAIT.

`ClusterRedis` answers the same calls as `FastRedis` (`execute`, `get`, `mget`, scripts through
`execute_with_scripts`), so the worker and the scorer run unchanged on one Redis or on a cluster
(`streamrec.redis.connect` picks by URL). A pipeline is cut into one sub-pipeline per primary, sent to all of
them at once, and its replies put back in the caller's order: a worker batch still costs one round trip per
node, not per command.

- Keys: a command's key decides its node (CRC16 slot of the key's hash tag). Scripts must declare a key; every
  key a script or an MGET touches must share its slot, which streamrec's key layout guarantees with hash tags
  (features/session_store.py, features/aggregate_layout.py). An MGET over several slots is split into GETs.
- Redirects: MOVED updates the slot map and resends; ASK resends once to the named node after ASKING;
  CLUSTERDOWN and TRYAGAIN are RedisUnavailable (the caller retries, as for a lost connection).
- Failover: a node that cannot be reached marks the slot map stale; the next call reloads it (CLUSTER SLOTS) from
  any node it knows, so a promoted replica is found once the cluster has elected it.
- Replicated writes: with `replicated_writes`, each sub-pipeline that writes ends with WAIT for the replicas
  the slot map lists for that primary (at most `replicated_writes`), and fewer acknowledgements raise
  RedisUnavailable. A write acknowledged only by a primary that then dies is therefore retried by its caller,
  never taken for done; a primary left without replicas by a failover takes writes without waiting.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import hiredis
from redis.crc import key_slot

from streamrec.errors import RedisReplyError, RedisUnavailable
from streamrec.redis.blocking import BlockingReader
from streamrec.redis.client import FastRedis, raise_reply_errors
from streamrec.redis.resp import Command
from streamrec.redis.target import ClusterTarget

log = logging.getLogger(__name__)

SLOTS = 16384
MAX_REDIRECTS = 5
REFRESH_MIN_INTERVAL_S = 0.2  # a burst of failures reloads the slot map once, not once per call
REFRESH_EVERY_S = 5.0  # and it is reloaded this often anyway: replicas that joined or left change the WAITs
BROADCAST = {b"SCRIPT", b"FLUSHALL", b"FLUSHDB"}  # run on every primary; the first reply stands for all
KEYLESS = {b"PING", b"INFO", b"DBSIZE", b"TIME", b"CLUSTER", b"WAIT", b"CONFIG", *BROADCAST}
READ_ONLY = {
    *(b"GET MGET HGET HMGET HGETALL ZREVRANGE ZRANGE ZSCORE ZCARD LRANGE EXISTS TTL PTTL TYPE STRLEN".split()),
    *(b"HLEN SCARD SMEMBERS PING INFO DBSIZE TIME CLUSTER SCRIPT ASKING".split()),
}
WAIT_TIMEOUT_MS = 1000


@dataclass
class SlotMap:
    """Which primary serves each slot, and how many replicas each primary has (as CLUSTER SLOTS lists them)."""

    owners: list[str] = field(default_factory=lambda: [""] * SLOTS)  # slot -> "host:port" of its primary
    replicas: dict[str, int] = field(default_factory=dict)  # primary -> replicas not marked failed

    @classmethod
    def from_cluster_slots(cls, reply: Sequence[object]) -> SlotMap:
        slot_map = cls()
        for entry in reply:
            start, end, primary, *replicas = list(entry)  # type: ignore[call-overload]
            address = _address(primary)
            slot_map.owners[int(start) : int(end) + 1] = [address] * (int(end) - int(start) + 1)
            slot_map.replicas[address] = len(replicas)
        return slot_map

    @property
    def primaries(self) -> list[str]:
        return sorted(self.replicas)


def _address(node: object) -> str:
    host, port = node[0], node[1]  # type: ignore[index]
    return f"{host.decode() if isinstance(host, bytes) else host}:{int(port)}"


def _name(command: Command) -> bytes:
    name = command[0]
    return (name if isinstance(name, bytes) else str(name).encode()).upper()


def command_key(command: Command) -> bytes | str | None:
    """The key that routes `command`; None for keyless commands (and scripts declaring no key)."""
    name = _name(command)
    if name in KEYLESS:
        return None
    if name in (b"EVALSHA", b"EVAL"):
        return command[3] if int(command[2]) > 0 else None  # type: ignore[return-value]
    return command[1] if len(command) > 1 else None  # type: ignore[return-value]


def slot_of(key: bytes | str) -> int:
    return key_slot(key if isinstance(key, bytes) else key.encode())


class ClusterRedis:
    is_cluster = True

    def __init__(
        self,
        target: str | ClusterTarget,
        connect_timeout_s: float = 0.5,
        retry_after_s: float = 0.5,
        replicated_writes: int = 0,
    ) -> None:
        self.target = target if isinstance(target, ClusterTarget) else ClusterTarget.from_url(target)
        self.connect_timeout_s = connect_timeout_s
        self.retry_after_s = retry_after_s
        self.replicated_writes = replicated_writes
        self.slot_map: SlotMap | None = None
        self._nodes: dict[str, FastRedis] = {}
        self._known = [seed.address for seed in self.target.seeds]
        self._refreshing: asyncio.Lock | None = None
        self._stale = True
        self._refreshed_at = 0.0

    # -- nodes and the slot map ------------------------------------------------------------------------------
    def _node(self, address: str) -> FastRedis:
        client = self._nodes.get(address)
        if client is None:
            host, port = address.rsplit(":", 1)
            node = self.target.node(host.strip("[]"), int(port))
            client = FastRedis(node, self.connect_timeout_s, self.retry_after_s)
            self._nodes[address] = client
        return client

    async def _slots(self) -> SlotMap:
        if time.monotonic() - self._refreshed_at > REFRESH_EVERY_S:
            self._stale = True
        if self.slot_map is not None and not self._stale:
            return self.slot_map
        self._refreshing = self._refreshing or asyncio.Lock()
        async with self._refreshing:
            recent = time.monotonic() - self._refreshed_at < REFRESH_MIN_INTERVAL_S
            if self.slot_map is not None and (not self._stale or recent):
                return self.slot_map
            self.slot_map = await self._load_slot_map()
            self._stale = False
            self._refreshed_at = time.monotonic()
            return self.slot_map

    async def _load_slot_map(self) -> SlotMap:
        failures = []
        for address in list(dict.fromkeys([*self._known, *(self.slot_map.primaries if self.slot_map else [])])):
            try:
                [reply] = await self._node(address).execute([("CLUSTER", "SLOTS")])
            except (RedisUnavailable, RedisReplyError) as exc:
                failures.append(f"{address}: {exc}")
                continue
            slot_map = SlotMap.from_cluster_slots(reply)  # type: ignore[arg-type]
            if all(slot_map.owners):
                self._known = list(dict.fromkeys([*self._known, *slot_map.primaries]))
                return slot_map
            failures.append(f"{address}: slots without a primary")
        raise RedisUnavailable(f"no node of the Redis Cluster {self.target.address} gives a slot map: {failures}")

    # -- the calls --------------------------------------------------------------------------------------------
    async def execute(self, commands: list[Command], raise_errors: bool = True) -> list[object]:
        """Send a pipeline over the cluster (one sub-pipeline per primary, at once); replies in the caller's order."""
        if not commands:
            return []
        plan, parts = _split_multi_slot_mgets(commands)
        replies = await self._route(parts)
        joined = plan.join(replies)
        return raise_reply_errors(joined) if raise_errors else joined

    async def _route(self, commands: list[Command]) -> list[object]:
        replies: list[object] = [None] * len(commands)
        todo = {i: "" for i in range(len(commands))}  # index -> node forced by ASK ("" = by slot map)
        for _ in range(MAX_REDIRECTS):
            slot_map = await self._slots()
            by_node = self._group(commands, todo, slot_map)
            sends = [
                self._send(node, [commands[i] for i in idx], node in asked, slot_map)
                for node, (idx, asked) in by_node.items()
            ]
            sent = await asyncio.gather(*sends, return_exceptions=True)
            todo = {}
            for (indices, _), result in zip(by_node.values(), sent, strict=True):
                if isinstance(result, BaseException):
                    self._stale = True
                    raise result
                for i, reply in zip(indices, result, strict=True):
                    redirect = self._redirect(reply)
                    if redirect is None:
                        replies[i] = reply
                    else:
                        todo[i] = redirect
            if not todo:
                return replies
        raise RedisUnavailable(f"Redis Cluster kept redirecting {len(todo)} command(s); is it resharding?")

    def _group(
        self, commands: list[Command], todo: dict[int, str], slot_map: SlotMap
    ) -> dict[str, tuple[list[int], set[str]]]:
        by_node: dict[str, tuple[list[int], set[str]]] = {}
        for i, forced in todo.items():
            command = commands[i]
            if forced.startswith("ASK "):
                node = forced[4:]
                by_node.setdefault(node, ([], set()))[1].add(node)
            else:
                key = command_key(command)
                node = slot_map.owners[slot_of(key)] if key is not None else slot_map.primaries[0]
            by_node.setdefault(node, ([], set()))[0].append(i)
        return by_node

    async def _send(self, node: str, commands: list[Command], asking: bool, slot_map: SlotMap) -> list[object]:
        if any(_name(c) in BROADCAST for c in commands):
            return await self._broadcast(commands, slot_map)
        if asking:  # ASK is for one command: prefix each with ASKING and drop ASKING's OK replies
            paired = [c for command in commands for c in (("ASKING",), command)]
            return (await self._node(node).execute(paired, raise_errors=False))[1::2]
        wait = self._replicas_to_wait(node, commands, slot_map)
        if not wait:
            return await self._node(node).execute(commands, raise_errors=False)
        *replies, acked = await self._node(node).execute([*commands, ("WAIT", wait, WAIT_TIMEOUT_MS)], False)
        if not isinstance(acked, int) or acked < wait:
            raise RedisUnavailable(f"writes on {node} reached {acked} of {wait} replica(s) within {WAIT_TIMEOUT_MS} ms")
        return replies

    def _replicas_to_wait(self, node: str, commands: list[Command], slot_map: SlotMap) -> int:
        if not self.replicated_writes or all(_name(c) in READ_ONLY for c in commands):
            return 0
        return min(self.replicated_writes, slot_map.replicas.get(node, 0))

    async def _broadcast(self, commands: list[Command], slot_map: SlotMap) -> list[object]:
        results = await asyncio.gather(*(self._node(n).execute(commands, False) for n in slot_map.primaries))
        return results[0]

    def _redirect(self, reply: object) -> str | None:
        """Where a MOVED or ASK reply sends its command ("" = the reloaded map, "ASK node"), None if not one."""
        if not isinstance(reply, hiredis.ReplyError):
            return None
        text = str(reply)
        if text.startswith("MOVED "):
            _, slot, address = text.split(" ")
            if self.slot_map is not None:
                self.slot_map.owners[int(slot)] = address
            self._stale = True  # one slot moved: others may have too (a failover, a reshard)
            return ""
        if text.startswith("ASK "):
            return "ASK " + text.split(" ")[2]
        if text.startswith(("CLUSTERDOWN", "TRYAGAIN")):
            self._stale = True
            raise RedisUnavailable(f"Redis Cluster: {text}")
        return None

    async def get(self, key: str) -> bytes | None:
        [reply] = await self.execute([("GET", key)])
        return reply  # type: ignore[return-value]

    async def mget(self, *keys: str) -> list[bytes | None]:
        [reply] = await self.execute([("MGET", *keys)])
        return reply  # type: ignore[return-value]

    @property
    def round_trips(self) -> int:
        return sum(client.round_trips for client in self._nodes.values())

    def blocking_reader(self, timeout_s: float) -> BlockingReader | None:
        return None  # a lone read goes through the slot map like any other

    async def aclose(self) -> None:
        for client in self._nodes.values():
            await client.aclose()


@dataclass
class _MgetPlan:
    """How the replies of the split commands make the caller's replies again."""

    spans: list[tuple[int, int, bool]]  # per caller command: first reply, count, joined (an MGET that was split)

    def join(self, replies: list[object]) -> list[object]:
        out: list[object] = []
        for start, count, joined in self.spans:
            out.append(replies[start : start + count] if joined else replies[start])
        return out


def _split_multi_slot_mgets(commands: list[Command]) -> tuple[_MgetPlan, list[Command]]:
    parts: list[Command] = []
    spans: list[tuple[int, int, bool]] = []
    for command in commands:
        keys = command[1:]
        if _name(command) == b"MGET" and len({slot_of(k) for k in keys}) > 1:  # type: ignore[arg-type]
            spans.append((len(parts), len(keys), True))
            parts += [("GET", key) for key in keys]
        else:
            spans.append((len(parts), 1, False))
            parts.append(command)
    return _MgetPlan(spans), parts
