"""Gemini embeddings for hybrid retrieval (used only when a key is set and the setting is on)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from operator import mul
from typing import Any

from google.genai import types

EMBED_BATCH = 100
DIMENSIONS = 768


def normalised(values: Sequence[float]) -> list[float]:
    norm = math.sqrt(sum(v * v for v in values)) or 1.0
    return [v / norm for v in values]


def dot(a: Sequence[float], b: Sequence[float]) -> float:
    return sum(map(mul, a, b))


class GeminiEmbedder:
    """Document and query vectors through the real google-genai async client."""

    def __init__(self, client: Any, model: str, *, dimensions: int = DIMENSIONS) -> None:
        self.client = client
        self.model = model
        self.dimensions = dimensions

    async def embed(self, texts: Sequence[str], *, query: bool = False) -> list[list[float]]:
        config = types.EmbedContentConfig(
            output_dimensionality=self.dimensions,
            task_type="RETRIEVAL_QUERY" if query else "RETRIEVAL_DOCUMENT",
        )
        vectors: list[list[float]] = []
        for start in range(0, len(texts), EMBED_BATCH):
            batch = list(texts[start : start + EMBED_BATCH])
            response = await self.client.aio.models.embed_content(model=self.model, contents=batch, config=config)
            embeddings = response.embeddings or []
            if len(embeddings) != len(batch):
                raise ValueError(f"asked for {len(batch)} embeddings, got {len(embeddings)}")
            vectors.extend(normalised(e.values or []) for e in embeddings)
        return vectors

    async def close(self) -> None:
        aclose = getattr(self.client.aio, "aclose", None)
        if aclose is not None:
            await aclose()
