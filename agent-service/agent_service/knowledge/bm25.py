"""Okapi BM25 over chunks, written for speed: per-posting weights are computed at index time,
so a query only sums precomputed floats for its terms and keeps the top ``k`` with a heap.
"""

from __future__ import annotations

import heapq
import math
from collections import Counter
from collections.abc import Sequence

from agent_service.domain.text import BASE_SYNONYMS, Synonyms, tokens


class BM25Index:
    def __init__(
        self, texts: Sequence[str], *, k1: float = 1.5, b: float = 0.75, synonyms: Synonyms = BASE_SYNONYMS
    ) -> None:
        self.size = len(texts)
        self.synonyms = synonyms
        docs = [Counter(tokens(text, synonyms)) for text in texts]
        lengths = [sum(d.values()) for d in docs]
        avg = (sum(lengths) / self.size) if self.size else 1.0
        frequency: Counter[str] = Counter()
        for d in docs:
            frequency.update(d.keys())
        self._postings: dict[str, list[tuple[int, float]]] = {}
        for i, d in enumerate(docs):
            norm = k1 * (1 - b + b * lengths[i] / (avg or 1.0))
            for term, tf in d.items():
                df = frequency[term]
                idf = math.log(1 + (self.size - df + 0.5) / (df + 0.5))
                self._postings.setdefault(term, []).append((i, idf * tf * (k1 + 1) / (tf + norm)))

    @property
    def vocabulary(self) -> int:
        return len(self._postings)

    def scores(self, query: str) -> dict[int, float]:
        """Score of every chunk that shares a term with ``query`` (repeated query terms count once)."""
        acc: dict[int, float] = {}
        get = acc.get
        for term in set(tokens(query, self.synonyms)):
            for index, weight in self._postings.get(term, ()):
                acc[index] = get(index, 0.0) + weight
        return acc

    def search(self, query: str, k: int) -> list[tuple[int, float]]:
        """The best ``k`` (chunk index, score) pairs, best first; ties keep document order."""
        acc = self.scores(query)
        return heapq.nsmallest(k, ((i, s) for i, s in acc.items()), key=lambda pair: (-pair[1], pair[0]))
