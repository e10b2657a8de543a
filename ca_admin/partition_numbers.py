"""What one process remembers about CRL partitions between issuances (ca_admin.crl_partitions).

Two things, both only ever a shortcut past a database round trip:

* numbers claimed in a block from the fill row and not yet handed out (PostgreSQL): one claim
  per :data:`BLOCK` certificates instead of one autocommitted UPDATE per certificate;
* partitions whose CRL this process saw committed, for :data:`PUBLISHED_MEMORY_SECONDS`, so an
  issuance does not ask again on every certificate whether its partition's CRL is there.

Held by ``CaRuntime`` (one per process); thread-safe.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

# Numbers one PostgreSQL claim takes. A process that stops leaves at most this many minus one
# unused, which only makes that partition smaller (as a rolled-back issuance does).
BLOCK = 32
# A partition CRL is never deleted by the service; the memory still lapses, so one removed
# behind its back (a restore, a hand repair) is published again by the next issuance.
PUBLISHED_MEMORY_SECONDS = 5.0


@dataclass
class _Block:
    partition: int
    left: int
    size: int  # the partition size the numbers were claimed under


class PartitionNumbers:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._blocks: dict[int, list[_Block]] = {}
        self._published: dict[tuple[int, int], float] = {}

    def take(self, authority_id: int, size: int) -> int | None:
        """The partition of a number claimed earlier under ``size``, now handed out; None when
        none is left. Numbers claimed under another size are dropped (the size was changed)."""
        with self._lock:
            blocks = self._blocks.get(authority_id, [])
            while blocks and (blocks[0].size != size or blocks[0].left <= 0):
                blocks.pop(0)
            if not blocks:
                return None
            blocks[0].left -= 1
            return blocks[0].partition

    def peek(self, authority_id: int, size: int) -> int | None:
        """The partition :meth:`take` would give now, without taking it (a preview)."""
        with self._lock:
            for block in self._blocks.get(authority_id, []):
                if block.size == size and block.left > 0:
                    return block.partition
            return None

    def keep(self, authority_id: int, *, partition: int, count: int, size: int) -> None:
        """Numbers just claimed and not handed out yet."""
        if count > 0:
            with self._lock:
                self._blocks.setdefault(authority_id, []).append(_Block(partition, count, size))

    def known_published(self, authority_id: int, partition: int) -> bool:
        seen = self._published.get((authority_id, partition))
        return seen is not None and time.monotonic() - seen < PUBLISHED_MEMORY_SECONDS

    def saw_published(self, authority_id: int, partition: int) -> None:
        """The partition's CRL is committed (never call this for one the caller's own
        uncommitted transaction published: a rollback would take it away again)."""
        with self._lock:
            self._published[(authority_id, partition)] = time.monotonic()

    def forget_published(self) -> None:
        with self._lock:
            self._published.clear()
