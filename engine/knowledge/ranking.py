"""What a keyword query searches for, and how rankings are fused.

A question in natural language becomes an OR of its words (stop words dropped): the full-text
engines would otherwise need every word in a chunk (FTS5's and PostgreSQL's default AND), and
raw punctuation breaks FTS5's query syntax. Stemming is the engines' own (FTS5's ``porter``
tokenizer, PostgreSQL's ``english`` configuration)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

__all__ = ["RRF_K", "STOP_WORDS", "fts5_query", "fuse", "query_terms", "tsquery"]

RRF_K = 60  # reciprocal rank fusion's constant (Cormack et al.)
MAX_TERMS = 32
_WORD = re.compile(r"[^\W_]+", re.UNICODE)
STOP_WORDS = frozenset(
    [
        "a",
        "about",
        "above",
        "after",
        "again",
        "against",
        "all",
        "am",
        "an",
        "and",
        "any",
        "are",
        "as",
        "at",
        "be",
        "because",
        "been",
        "before",
        "being",
        "below",
        "between",
        "both",
        "but",
        "by",
        "can",
        "could",
        "did",
        "do",
        "does",
        "doing",
        "down",
        "during",
        "each",
        "few",
        "for",
        "from",
        "further",
        "had",
        "has",
        "have",
        "having",
        "he",
        "her",
        "here",
        "hers",
        "herself",
        "him",
        "himself",
        "his",
        "how",
        "i",
        "if",
        "in",
        "into",
        "is",
        "it",
        "its",
        "itself",
        "just",
        "me",
        "more",
        "most",
        "my",
        "myself",
        "no",
        "nor",
        "not",
        "now",
        "of",
        "off",
        "on",
        "once",
        "only",
        "or",
        "other",
        "our",
        "ours",
        "ourselves",
        "out",
        "over",
        "own",
        "same",
        "she",
        "should",
        "so",
        "some",
        "such",
        "than",
        "that",
        "the",
        "their",
        "theirs",
        "them",
        "themselves",
        "then",
        "there",
        "these",
        "they",
        "this",
        "those",
        "through",
        "to",
        "too",
        "under",
        "until",
        "up",
        "very",
        "was",
        "we",
        "were",
        "what",
        "when",
        "where",
        "which",
        "while",
        "who",
        "whom",
        "why",
        "will",
        "with",
        "would",
        "you",
        "your",
        "yours",
        "yourself",
        "yourselves",
        "tell",
        "know",
        "called",
        "name",
        "named",
        "one",
        "ones",
        "many",
        "much",
        "also",
        "whose",
    ]
)


def query_terms(query: str) -> list[str]:
    """The words of ``query`` worth searching for, lower-cased, each once, in order; the stop
    words too when there is nothing else."""
    words = [word.lower() for word in _WORD.findall(query)]
    kept = [word for word in words if word not in STOP_WORDS]
    return list(dict.fromkeys(kept or words))[:MAX_TERMS]


def fts5_query(terms: Sequence[str]) -> str:
    """An FTS5 MATCH expression: any of the terms, each quoted (so no word is an operator)."""
    return " OR ".join('"' + term.replace('"', '""') + '"' for term in terms)


def tsquery(terms: Sequence[str]) -> str:
    """A ``to_tsquery`` expression: any of the terms (they are letters and digits only)."""
    return " | ".join(terms)


def fuse(rankings: Iterable[Sequence[int]], k: int = RRF_K) -> list[tuple[int, float]]:
    """Reciprocal rank fusion of rankings of chunk ids (best first): each id scores the sum of
    ``1 / (k + rank)`` over the rankings it is in; best first."""
    scores: dict[int, float] = {}
    for ranking in rankings:
        for rank, chunk_id in enumerate(ranking, start=1):
            scores[chunk_id] = scores.get(chunk_id, 0.0) + 1.0 / (k + rank)
    return sorted(scores.items(), key=lambda item: (-item[1], item[0]))
