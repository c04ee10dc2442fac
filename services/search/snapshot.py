"""Snapshot files of memory indexes, so reopening a large index skips re-tokenising it.

A snapshot is a derived cache, never the truth: ``<index id>-<version>-<key>.npz`` holds
a :class:`MemoryIndex` as it was at that index version, and the embedded backend applies
the changes committed since (rows and tombstones with a newer version) after loading it.
``key`` covers the tokeniser and the file format, so a snapshot made with other tokens
is never used. Files are written to a temporary name and renamed: never half-written.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import tempfile
from pathlib import Path

import numpy as np

from services.search.memory import MemoryIndex

log = logging.getLogger(__name__)
FORMAT = 1
NAME = re.compile(r"^(\d+)-(\d+)-([0-9a-f]+)\.npz$")


class SnapshotStore:
    """The snapshot files of one search folder."""

    def __init__(self, directory: Path, tokenizer_fingerprint: str) -> None:
        self.directory = directory
        self.key = hashlib.sha256(f"{FORMAT}:{tokenizer_fingerprint}".encode()).hexdigest()[:12]

    def _files(self, index_id: int) -> list[tuple[int, Path]]:
        """``(version, path)`` of this index's snapshots with our key, newest first."""
        if not self.directory.is_dir():
            return []
        found = []
        for path in self.directory.glob(f"{index_id}-*.npz"):
            match = NAME.match(path.name)
            if match and int(match[1]) == index_id and match[3] == self.key:
                found.append((int(match[2]), path))
        return sorted(found, reverse=True)

    def load(self, index_id: int, max_version: int, **options) -> tuple[MemoryIndex, int] | None:
        """The newest usable snapshot at or below ``max_version``, as ``(memory, version)``."""
        for version, path in self._files(index_id):
            if version > max_version:
                continue
            try:
                with np.load(path, allow_pickle=False) as arrays:
                    return MemoryIndex.from_arrays(dict(arrays), **options), version
            except Exception as exc:  # a damaged cache is only a slower start
                log.warning("ignoring search snapshot %s: %s", path, exc)
        return None

    def save(self, memory: MemoryIndex, index_id: int, version: int) -> None:
        """Write a snapshot, then delete this index's older ones; failures only log."""
        path = self.directory / f"{index_id}-{version}-{self.key}.npz"
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            arrays = memory.to_arrays()
            handle, temporary = tempfile.mkstemp(dir=self.directory, suffix=".tmp")
            try:
                with os.fdopen(handle, "wb") as out:
                    np.savez(out, **arrays)
                os.replace(temporary, path)
            except BaseException:
                Path(temporary).unlink(missing_ok=True)
                raise
        except OSError as exc:
            log.warning("could not write search snapshot %s: %s", path, exc)
            return
        for _, older in self._files(index_id):
            if older != path:
                older.unlink(missing_ok=True)

    def remove(self, index_id: int) -> None:
        for path in self.directory.glob(f"{index_id}-*.npz") if self.directory.is_dir() else ():
            if NAME.match(path.name) and int(NAME.match(path.name)[1]) == index_id:
                path.unlink(missing_ok=True)
