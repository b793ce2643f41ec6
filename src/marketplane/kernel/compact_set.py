"""A set of 64-bit integers at eight bytes each (a Python set of them takes about sixty).

Recent additions sit in a set; once it holds MERGE_AT values and a quarter as many as the array,
they are merged into one sorted array, which membership searches by bisection. Used to remember
every SKU a million-row feed has named: eight megabytes, where a set took sixty.
"""

from __future__ import annotations

import bisect
import heapq
from array import array
from collections.abc import Iterable

MERGE_AT = 65_536


class CompactIntSet:
    def __init__(self) -> None:
        self._sorted = array("q")
        self._recent: set[int] = set()

    def __contains__(self, value: int) -> bool:
        if value in self._recent:
            return True
        at = bisect.bisect_left(self._sorted, value)
        return at < len(self._sorted) and self._sorted[at] == value

    def __len__(self) -> int:
        return len(self._sorted) + len(self._recent)

    def update(self, values: Iterable[int]) -> None:
        for value in values:
            if value not in self:
                self._recent.add(value)
        if len(self._recent) >= max(MERGE_AT, len(self._sorted) // 4):
            # Merged a value at a time: never a list of them all at once.
            self._sorted = array("q", heapq.merge(self._sorted, sorted(self._recent)))
            self._recent = set()
