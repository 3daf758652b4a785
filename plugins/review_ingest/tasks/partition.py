"""Work cut into mapped tasks, few enough to stay under Airflow's ``max_map_length``."""

from __future__ import annotations

from typing import TypeVar

T = TypeVar("T")


def split(
    items: list[T], sizes: list[int], batch_size: int, batch_bytes: int, max_batches: int
) -> list[list[T]]:
    """The items in their order, in batches of at most ``batch_size`` items and ``batch_bytes``
    bytes (an item bigger than that alone); when that makes more than ``max_batches``, both
    limits double until it does not."""
    while True:
        batches: list[list[T]] = []
        total = 0
        for item, size in zip(items, sizes, strict=True):
            if not batches or len(batches[-1]) >= batch_size or total + size > batch_bytes:
                batches.append([])
                total = 0
            batches[-1].append(item)
            total += size
        if len(batches) <= max_batches:
            return batches
        batch_size, batch_bytes = batch_size * 2, batch_bytes * 2
