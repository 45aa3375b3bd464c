"""Deterministic splits, as flagd's `fractional` computes them (flagd's evaluator, "fractional"):

    hash   = MurmurHash3_x86_32(flag key + targeting key, seed 0), unsigned
    bucket = (hash * total weight) >> 32                      an integer in [0, total weight)
    the variant is the first whose cumulative weight exceeds the bucket, in declared order

So a subject lands in the same variant on every evaluation, process and restart, and the
same flag and key give the same variant in flagd. The targeting key here is the subject's
pseudonym, never the raw identifier: stable within a pseudonym epoch, whatever keys rotate.
"""

from __future__ import annotations

from collections.abc import Sequence

import mmh3


def split_hash(flag_key: str, targeting_key: str) -> int:
    return int(mmh3.hash(flag_key + targeting_key, 0, signed=False))


def split_variant(flag_key: str, targeting_key: str, weights: Sequence[tuple[str, int]]) -> str:
    """The variant of `weights` (name, integer weight; their sum positive) for this key."""
    total = sum(weight for _, weight in weights)
    bucket = (split_hash(flag_key, targeting_key) * total) >> 32
    reached = 0
    for variant, weight in weights:
        reached += weight
        if bucket < reached:
            return variant
    raise AssertionError("unreachable: the bucket is below the total weight")
