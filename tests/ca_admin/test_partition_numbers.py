"""What a process remembers about CRL partitions (ca_admin.partition_numbers): blocks that grow
while the process is busy and lapse when it is idle, and CRLs seen published for a while."""

from __future__ import annotations

from ca_admin.partition_numbers import (
    BLOCK_LIFETIME_SECONDS,
    MAX_BLOCK,
    PUBLISHED_MEMORY_SECONDS,
    PartitionNumbers,
)

AUTHORITY, SIZE = 7, 100_000


class Seconds:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_claims_double_up_to_the_largest_block() -> None:
    numbers = PartitionNumbers(Seconds())

    sizes = [numbers.claim_size(AUTHORITY) for _ in range(8)]

    assert sizes == [1, 2, 4, 8, 16, 32, 32, 32]
    assert MAX_BLOCK == 32
    assert numbers.claim_size(AUTHORITY + 1) == 1  # each CA on its own


def test_numbers_are_handed_out_once_and_only_under_the_size_they_were_claimed_for() -> None:
    numbers = PartitionNumbers(Seconds())
    numbers.keep(AUTHORITY, partition=3, count=2, size=SIZE)

    assert numbers.peek(AUTHORITY, SIZE) == 3
    assert [numbers.take(AUTHORITY, SIZE) for _ in range(3)] == [3, 3, None]

    numbers.keep(AUTHORITY, partition=4, count=5, size=SIZE)
    assert numbers.take(AUTHORITY, 2) is None  # the partition size was changed: dropped
    assert numbers.take(AUTHORITY, SIZE) is None


def test_an_idle_process_lets_its_block_lapse_and_claims_small_again() -> None:
    seconds = Seconds()
    numbers = PartitionNumbers(seconds)
    for _ in range(4):
        numbers.claim_size(AUTHORITY)
    numbers.keep(AUTHORITY, partition=2, count=7, size=SIZE)
    assert numbers.take(AUTHORITY, SIZE) == 2

    seconds.now += BLOCK_LIFETIME_SECONDS

    assert numbers.peek(AUTHORITY, SIZE) is None
    assert numbers.take(AUTHORITY, SIZE) is None
    assert numbers.claim_size(AUTHORITY) == 1


def test_a_published_partition_is_remembered_for_a_while() -> None:
    seconds = Seconds()
    numbers = PartitionNumbers(seconds)
    assert not numbers.known_published(AUTHORITY, 1)

    numbers.saw_published(AUTHORITY, 1)
    assert numbers.known_published(AUTHORITY, 1)
    assert not numbers.known_published(AUTHORITY, 2)

    seconds.now += PUBLISHED_MEMORY_SECONDS
    assert not numbers.known_published(AUTHORITY, 1)

    numbers.saw_published(AUTHORITY, 1)
    numbers.forget_published()
    assert not numbers.known_published(AUTHORITY, 1)
