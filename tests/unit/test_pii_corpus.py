"""The scrubber on its labelled corpus (tests/data/pii/corpus.jsonl, written by
make_corpus.py there): the accuracy targets of docs/free-text.md."""

from __future__ import annotations

from pathlib import Path

import pytest

from processor.devtools.benchmark.pii import CLEAN_PREFIX, Labelled, evaluate, load_corpus, totals
from processor.pipeline.detectors import find_identifiers

CORPUS = Path(__file__).parents[1] / "data" / "pii" / "corpus.jsonl"


@pytest.fixture(scope="module")
def corpus() -> list[Labelled]:
    return load_corpus(CORPUS)


def _spans(text: str) -> list[tuple[int, int]]:
    return [(d.start, d.end) for d in find_identifiers(text)]


def test_corpus_has_at_least_as_many_clean_texts_as_texts_with_personal_data(
    corpus: list[Labelled],
) -> None:
    clean = sum(item.clean for item in corpus)
    assert clean >= len(corpus) - clean >= 500


def test_when_scrubbing_the_corpus_then_98_percent_of_texts_with_personal_data_lose_all_of_it(
    corpus: list[Labelled],
) -> None:
    pii, _ = totals(evaluate(corpus, _spans))
    assert pii.share >= 0.98, f"{pii.passed}/{pii.texts}"


def test_when_scrubbing_the_corpus_then_every_kind_is_fully_scrubbed_in_95_percent(
    corpus: list[Labelled],
) -> None:
    tallies = evaluate(corpus, _spans)
    low = {
        kind: f"{t.passed}/{t.texts}"
        for kind, t in tallies.items()
        if not kind.startswith(CLEAN_PREFIX) and t.share < 0.95
    }
    assert not low


def test_when_scrubbing_the_corpus_then_98_percent_of_clean_texts_are_unchanged(
    corpus: list[Labelled],
) -> None:
    _, clean = totals(evaluate(corpus, _spans))
    assert clean.share >= 0.98, f"{clean.passed}/{clean.texts}"
