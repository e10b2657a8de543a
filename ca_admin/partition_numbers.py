"""What one process remembers about CRL partitions between issuances (ca_admin.crl_partitions).

Two things, both only ever a shortcut past a database round trip:

* numbers claimed in a block from the fill row and not yet handed out (PostgreSQL): one claim
  per block of certificates instead of one autocommitted UPDATE per certificate;
* partitions whose CRL this process saw committed, for :data:`PUBLISHED_MEMORY_SECONDS`, so an
  issuance does not ask again on every certificate whether its partition's CRL is there.

Numbers a process claims and never hands out (it stops, or sits idle until its block lapses)
only make their partition smaller. Blocks start at one number and double with every claim up
to :data:`MAX_BLOCK`, so a process that issues one certificate (a CLI command) wastes nothing,
and one that issues many never leaves more unused than it has used; a block unused for
:data:`BLOCK_LIFETIME_SECONDS` lapses, and the next claim starts at one again, so a certificate
of an idle process does not land in a partition the others left long ago.

Held by ``CaRuntime`` (one per process); thread-safe.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

MAX_BLOCK = 32
BLOCK_LIFETIME_SECONDS = 60.0
# A partition CRL is never deleted by the service; the memory still lapses, so one removed
# behind its back (a restore, a hand repair) is published again by the next issuance.
PUBLISHED_MEMORY_SECONDS = 5.0


@dataclass
class _Block:
    partition: int
    left: int
    size: int  # the partition size the numbers were claimed under
    claimed_at: float


class PartitionNumbers:
    def __init__(self, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._monotonic = monotonic  # seconds; a test gives its own
        self._lock = threading.Lock()
        self._blocks: dict[int, list[_Block]] = {}
        self._next_claim: dict[int, int] = {}
        self._published: dict[tuple[int, int], float] = {}

    def _usable(self, authority_id: int, size: int) -> _Block | None:
        """The first block still good for ``size``; drops the ones that are not."""
        blocks = self._blocks.get(authority_id, [])
        now = self._monotonic()
        while blocks:
            block = blocks[0]
            if now - block.claimed_at >= BLOCK_LIFETIME_SECONDS:
                self._next_claim.pop(authority_id, None)  # idle: start small again
            elif block.size == size and block.left > 0:
                return block
            blocks.pop(0)
        return None

    def take(self, authority_id: int, size: int) -> int | None:
        """The partition of a number claimed earlier under ``size``, now handed out; None when
        none is left. Numbers claimed under another size are dropped (the size was changed)."""
        with self._lock:
            block = self._usable(authority_id, size)
            if block is None:
                return None
            block.left -= 1
            return block.partition

    def peek(self, authority_id: int, size: int) -> int | None:
        """The partition :meth:`take` would give now, without taking it (a preview)."""
        with self._lock:
            block = self._usable(authority_id, size)
            return None if block is None else block.partition

    def claim_size(self, authority_id: int) -> int:
        """How many numbers to claim now: twice the last claim, at most :data:`MAX_BLOCK`."""
        with self._lock:
            size = self._next_claim.get(authority_id, 1)
            self._next_claim[authority_id] = min(size * 2, MAX_BLOCK)
            return size

    def keep(self, authority_id: int, *, partition: int, count: int, size: int) -> None:
        """Numbers just claimed and not handed out yet."""
        if count > 0:
            with self._lock:
                self._blocks.setdefault(authority_id, []).append(
                    _Block(partition, count, size, self._monotonic())
                )

    def known_published(self, authority_id: int, partition: int) -> bool:
        seen = self._published.get((authority_id, partition))
        return seen is not None and self._monotonic() - seen < PUBLISHED_MEMORY_SECONDS

    def saw_published(self, authority_id: int, partition: int) -> None:
        """The partition's CRL is committed (never call this for one the caller's own
        uncommitted transaction published: a rollback would take it away again)."""
        with self._lock:
            self._published[(authority_id, partition)] = self._monotonic()

    def forget_published(self) -> None:
        with self._lock:
            self._published.clear()
