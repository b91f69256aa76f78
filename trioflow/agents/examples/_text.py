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
    """Documents ranked by TF-IDF of the query's words, best first; no match, no result.

    O(documents x distinct query words) once the documents' words are counted: a word the
    query repeats is ranked as often as it appears, but looked up once."""
    terms = Counter(words(query))
    counted = [Counter(words(doc["title"] + " " + doc["text"])) for doc in documents]
    n = len(documents)
    idf = {}
    for term in terms:
        df = sum(1 for counts in counted if term in counts)
        if df:
            idf[term] = math.log(1 + n / df)
    ranked = []
    for doc, counts in zip(documents, counted, strict=True):
        length = sum(counts.values())
        score = sum(
            repeat * counts[term] / length * weight
            for term, weight in idf.items()
            if (repeat := terms[term]) and term in counts
        )
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
