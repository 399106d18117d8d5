"""The floor for ingestion: a do-nothing Faust agent built like our worker, counting events until it saw N.

Run as a process: python -m streamrec.bench.faust_baseline BOOTSTRAP TOPIC N GROUP; prints one JSON line and exits.
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any

import faust

from streamrec.stream import transport


def main(bootstrap: str, topic_name: str, expected: int, group: str) -> None:
    transport.register()
    app = faust.App(
        group,
        broker=f"{transport.SCHEME}://{bootstrap}",
        store="memory://",
        web_enabled=False,
        broker_session_timeout=6.0,
        broker_heartbeat_interval=1.0,
        consumer_auto_offset_reset="earliest",
        datadir=f"/tmp/{group}",
    )
    topic = app.topic(topic_name, key_serializer="raw", value_serializer="raw")
    seen = {"n": 0, "first": 0.0}

    @app.agent(topic)
    async def count(stream: Any) -> None:
        async for _ in stream:
            if seen["n"] == 0:
                seen["first"] = time.perf_counter()
            seen["n"] += 1
            if seen["n"] == expected:
                elapsed = time.perf_counter() - seen["first"]
                print(
                    json.dumps({"events": expected, "seconds": elapsed, "events_per_s": (expected - 1) / elapsed}),
                    flush=True,
                )
                os._exit(0)  # the figure is out; skip Faust's slow graceful shutdown

    worker = faust.Worker(app, loglevel="warning", quiet=True)
    worker.execute_from_commandline()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4])
