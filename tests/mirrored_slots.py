"""The sidecar's model path in one process, for tests that step it by hand: the watcher's
registry poll (:class:`ModelWatcher`, MLflow → local mirror) followed by the slots' refresh
(:class:`ModelSlots`, mirror → onnxruntime), which in a running sidecar happen in two processes
within a poll interval of each other."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from streaming.inference import ModelSlots, RefreshReport
from streaming.model_files import mirror_dir
from streaming.model_watcher import ModelWatcher


class MirroredSlots:
    """A watcher and the slots reading its mirror; every other attribute is the slots'."""

    def __init__(
        self, tracking_uri: str, model_name: str, data_root: Path, **slot_options: Any
    ) -> None:
        directory = mirror_dir(data_root, model_name)
        self.watcher = ModelWatcher(tracking_uri, model_name, directory)
        self.slots = ModelSlots(directory, **slot_options)

    def refresh(self) -> RefreshReport:
        """One registry poll by the watcher, then one refresh of the slots."""
        self.watcher.sync()
        return self.slots.refresh()

    async def refresh_async(self) -> RefreshReport:
        await asyncio.to_thread(self.watcher.sync)
        return await self.slots.refresh_async()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.slots, name)
