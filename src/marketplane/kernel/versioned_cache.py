"""A bounded cache of answers that holds only while the data they came from is unchanged.

Every entry belongs to one data version (a value the database gives, different after any
commit). The first lookup under a new version drops everything cached under the old one, so a
cached answer is never older than the last commit its reader could see. An answer computed
while the version moved on is not kept.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable


class VersionedCache:
    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._version: str | None = None
        self._entries: OrderedDict[Hashable, bytes] = OrderedDict()
        self._bytes = 0
        self.hits = 0
        self.misses = 0

    @property
    def enabled(self) -> bool:
        return self.max_bytes > 0

    def __len__(self) -> int:
        return len(self._entries)

    def _advance(self, version: str) -> None:
        if version != self._version:
            self._version = version
            self._entries.clear()
            self._bytes = 0

    def get(self, version: str, key: Hashable) -> bytes | None:
        self._advance(version)
        found = self._entries.get(key)
        if found is None:
            self.misses += 1
            return None
        self._entries.move_to_end(key)
        self.hits += 1
        return found

    def put(self, version: str, key: Hashable, value: bytes) -> None:
        if version != self._version or len(value) > self.max_bytes:
            return  # computed under a version that has since moved on, or too big to keep
        old = self._entries.pop(key, None)
        if old is not None:
            self._bytes -= len(old)
        self._entries[key] = value
        self._bytes += len(value)
        while self._bytes > self.max_bytes:
            _, dropped = self._entries.popitem(last=False)
            self._bytes -= len(dropped)
