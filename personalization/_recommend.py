"""Recommendations, "the next feature to show": item-item collaborative filtering over the
consented interactions the core keeps (a flow's `recommend` event and item property).

Two items are as similar as the cosine of the sets of subjects that interacted with them
(co-occurrence / sqrt(popularity x popularity)); a subject's candidates are the items similar to
those it used, scored by the sum of similarities, without what it already used. A subject with
no history gets the most popular items, marked `popular`. Models are rebuilt from the profiles
every few seconds, so an erased subject's interactions leave them within that time.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from itertools import combinations
from typing import Literal

import msgspec

NEIGHBOURS = 50  # similar items kept per item
POPULAR = 50


class Recommendation(msgspec.Struct, frozen=True, kw_only=True):
    item: str
    score: float
    basis: Literal["similar", "popular"]


@dataclass(frozen=True, slots=True)
class Model:
    similar: dict[str, list[tuple[str, float]]]  # item -> (other item, cosine), best first
    popular: list[tuple[str, int]]  # items by how many subjects used them
    subjects: int
    built_at: float = field(default_factory=time.monotonic)


def build_model(interactions: Mapping[str, Iterable[str]]) -> Model:
    """The model of subject -> items interacted with."""
    users: Counter[str] = Counter()
    together: Counter[tuple[str, str]] = Counter()
    for items in interactions.values():
        unique = sorted(set(items))
        users.update(unique)
        together.update(combinations(unique, 2))
    similar: dict[str, list[tuple[str, float]]] = {}
    for (a, b), both in together.items():
        cosine = both / math.sqrt(users[a] * users[b])
        similar.setdefault(a, []).append((b, cosine))
        similar.setdefault(b, []).append((a, cosine))
    for others in similar.values():
        others.sort(key=lambda pair: (-pair[1], pair[0]))
        del others[NEIGHBOURS:]
    popular = sorted(users.items(), key=lambda pair: (-pair[1], pair[0]))[:POPULAR]
    return Model(similar=similar, popular=popular, subjects=len(interactions))


def recommend(model: Model | None, history: Iterable[str], count: int) -> list[Recommendation]:
    """Up to `count` items for a subject that used `history`."""
    if model is None or count <= 0:
        return []
    used = set(history)
    scores: dict[str, float] = {}
    for item in used:
        for other, cosine in model.similar.get(item, ()):
            if other not in used:
                scores[other] = scores.get(other, 0.0) + cosine
    if scores:
        ranked = sorted(scores.items(), key=lambda pair: (-pair[1], pair[0]))[:count]
        return [
            Recommendation(item=item, score=round(score, 6), basis="similar")
            for item, score in ranked
        ]
    return [
        Recommendation(item=item, score=round(users / max(model.subjects, 1), 6), basis="popular")
        for item, users in model.popular
        if item not in used
    ][:count]


class Recommenders:
    """The models of every (source, interaction kind) flows recommend from, rebuilt by
    `refresh`; `kinds` is what the core records (read in its transactions: a plain set)."""

    def __init__(self) -> None:
        self.kinds: frozenset[tuple[str, str]] = frozenset()
        self._models: dict[tuple[str, str], Model] = {}

    def model(self, source_id: str, key: str) -> Model | None:
        return self._models.get((source_id, key))

    def replace(self, models: dict[tuple[str, str], Model]) -> None:
        self._models = models
