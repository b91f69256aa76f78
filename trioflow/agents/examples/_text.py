"""Small, deterministic text tools for the example agents: ranking and summarising."""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from functools import cache
from importlib import resources

_WORD = re.compile(r"[a-z0-9]+")
_SENTENCE = re.compile(r"(?<=[.!?])\s+")
_STOPWORDS = frozenset(
    {
        "a",
        "an",
        "and",
        "are",
        "as",
        "at",
        "be",
        "by",
        "every",
        "for",
        "from",
        "if",
        "in",
        "is",
        "it",
        "its",
        "of",
        "on",
        "or",
        "so",
        "that",
        "the",
        "their",
        "them",
        "then",
        "they",
        "this",
        "to",
        "until",
        "when",
        "where",
        "which",
        "with",
    }
)


def words(text: str) -> list[str]:
    return [w for w in _WORD.findall(text.lower()) if w not in _STOPWORDS]


@cache
def corpus() -> tuple[dict[str, str], ...]:
    """The documents that ship with the package (``corpus.json``)."""
    raw = resources.files(__package__).joinpath("corpus.json").read_text(encoding="utf-8")
    return tuple(json.loads(raw))


def search(
    query: str, documents: tuple[dict[str, str], ...], limit: int = 3
) -> list[dict[str, str | float]]:
    """Documents ranked by TF-IDF of the query's words, best first; no match, no result."""
    terms = words(query)
    doc_words = [words(doc["title"] + " " + doc["text"]) for doc in documents]
    n = len(documents)
    ranked = []
    for doc, tokens in zip(documents, doc_words, strict=True):
        counts = Counter(tokens)
        score = 0.0
        for term in terms:
            if counts[term]:
                df = sum(1 for other in doc_words if term in other)
                score += (counts[term] / len(tokens)) * math.log(1 + n / df)
        if score > 0:
            ranked.append((score, doc["title"]))
    ranked.sort(key=lambda pair: (-pair[0], pair[1]))
    return [{"title": title, "score": round(score, 4)} for score, title in ranked[:limit]]


def summarize(text: str, sentences: int = 2) -> str:
    """The ``sentences`` most representative sentences (by word frequency), in order."""
    parts = [s.strip() for s in _SENTENCE.split(text.strip()) if s.strip()]
    if len(parts) <= sentences:
        return " ".join(parts)
    freq = Counter(words(text))
    scored = []
    for index, sentence in enumerate(parts):
        tokens = words(sentence)
        score = sum(freq[t] for t in tokens) / (len(tokens) or 1)
        scored.append((score, index))
    keep = sorted(index for _, index in sorted(scored, key=lambda p: (-p[0], p[1]))[:sentences])
    return " ".join(parts[i] for i in keep)
