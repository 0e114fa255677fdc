"""Bounded LRU cache of OCR results, keyed by image SHA-256 and profile."""
from __future__ import annotations

import copy
import json
import threading
from collections import OrderedDict
from typing import Any


class ResultCache:
    def __init__(self, max_entries: int, max_size_mb: float) -> None:
        self.max_entries = max(0, max_entries)
        self.max_bytes = int(max_size_mb * 1024 * 1024)
        self._entries: OrderedDict[tuple[str, str], tuple[dict[str, Any], int]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, sha256: str, profile: str) -> dict[str, Any] | None:
        with self._lock:
            entry = self._entries.get((sha256, profile))
            if entry is None:
                self.misses += 1
                return None
            self._entries.move_to_end((sha256, profile))
            self.hits += 1
            # Callers annotate results; never let them mutate the cached copy.
            return copy.deepcopy(entry[0])

    def put(self, sha256: str, profile: str, result: dict[str, Any]) -> None:
        size = len(json.dumps(result, ensure_ascii=False, default=str))
        if self.max_entries == 0 or size > self.max_bytes:
            return
        with self._lock:
            key = (sha256, profile)
            if key in self._entries:
                self._bytes -= self._entries.pop(key)[1]
            self._entries[key] = (copy.deepcopy(result), size)
            self._bytes += size
            while len(self._entries) > self.max_entries or self._bytes > self.max_bytes:
                _, (_, evicted_size) = self._entries.popitem(last=False)
                self._bytes -= evicted_size

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._bytes = 0

    def stats(self) -> dict[str, Any]:
        with self._lock:
            lookups = self.hits + self.misses
            return {
                "entries": len(self._entries),
                "size_mb": round(self._bytes / (1024 * 1024), 3),
                "max_entries": self.max_entries,
                "max_size_mb": round(self.max_bytes / (1024 * 1024), 3),
                "hits": self.hits,
                "misses": self.misses,
                "hit_ratio": round(self.hits / lookups, 4) if lookups else 0.0,
            }

    def __len__(self) -> int:
        return len(self._entries)
