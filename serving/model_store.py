"""The model in service and its hot reload: watch the registry, verify and warm a new version, swap atomically.

`holder.runtime` is one reference; a request reads it once and keeps that runtime to the end, so a swap
never splits a request between two models, and in-flight requests finish on the old one. Loading (checksums,
session creation, warm-up) runs in a thread, off the event loop. A version that fails to load is logged and
counted, and the current one keeps serving. Rollback: point the registry's CURRENT at an older version
(`streamrec model use VERSION`), or pin one with STREAMREC_SERVING_MODEL_VERSION.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path

from streamrec.artifact import current_version
from streamrec.errors import ArtifactError, ScorerError
from streamrec.serving import metrics
from streamrec.serving.runtime import ModelRuntime

log = logging.getLogger(__name__)


class ModelHolder:
    def __init__(self, registry: Path, providers: str, threads: int, pinned_version: str = "") -> None:
        self.registry = Path(registry)
        self.providers = providers
        self.threads = threads
        self.pinned = pinned_version
        self.runtime = self._load(pinned_version or current_version(self.registry))
        self._rejected = ""  # a version that failed to load is not retried until CURRENT changes again
        self._task: asyncio.Task[None] | None = None
        self._publish_info()

    def _load(self, version: str) -> ModelRuntime:
        return ModelRuntime(self.registry / version, self.providers, self.threads)

    def _publish_info(self) -> None:
        metrics.serving_model(self.runtime.version, ",".join(self.runtime.providers))

    async def check_for_update(self) -> bool:
        """Swap to the registry's CURRENT version if it changed; True when a swap happened."""
        if self.pinned:
            return False
        try:
            wanted = current_version(self.registry)
        except ArtifactError as exc:
            log.warning("model registry unreadable, keeping %s: %s", self.runtime.version, exc)
            return False
        if wanted in (self.runtime.version, self._rejected):
            return False
        try:
            fresh = await asyncio.to_thread(self._load, wanted)
        except (ArtifactError, ScorerError, OSError) as exc:
            self._rejected = wanted
            metrics.RELOADS.labels("rejected").inc()
            log.error("model %s rejected, keeping %s: %s", wanted, self.runtime.version, exc)
            return False
        old, self.runtime = self.runtime, fresh
        metrics.RELOADS.labels("swapped").inc()
        self._publish_info()
        log.info("model swapped: %s -> %s (providers %s)", old.version, fresh.version, fresh.providers)
        return True

    async def _watch(self, interval_s: float) -> None:
        while True:
            await asyncio.sleep(interval_s)
            await self.check_for_update()

    def start_watching(self, interval_s: float) -> None:
        self._task = asyncio.get_running_loop().create_task(self._watch(interval_s), name="model-watch")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
