"""pseudostream's free-text detectors next to Microsoft Presidio's pattern recognizers, on
the same labelled corpus (tests/data/pii/corpus.jsonl), judged alike.

    pip install -e '.[presidio]'          # presidio-analyzer; no spaCy model is downloaded
    python bench/presidio_compare.py [--corpus tests/data/pii/corpus.jsonl] [--json FILE]

Presidio is set up the way its pattern recognizers work without a language model: an
``AnalyzerEngine`` over a registry of the predefined recognizers that look for the kinds
of the corpus (phone numbers with ``phonenumbers`` for region CN, credit cards with Luhn,
e-mail, IP, MAC, UUID), all registered for Chinese, and an NLP engine that returns no
tokens and no entities (so no spaCy model is loaded; context words then change no score).
Every result counts, whatever its score. Presidio ships no recognizer for Chinese ID
numbers, QQ or WeChat ids, licence plates or addresses; their rows show what it finds
anyway.

A text with personal data passes when every letter, digit and Chinese character of each
labelled value is inside a detected span; a clean text passes when nothing is detected
(``processor.devtools.benchmark.pii``). Both tables are printed, then the CPU time per text.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from processor.devtools.benchmark import RESULTS_DIR, machine, write_json
from processor.devtools.benchmark.pii import Labelled, evaluate, load_corpus, markdown_table, totals
from processor.pipeline.detectors import find_identifiers

CORPUS = Path("tests/data/pii/corpus.jsonl")  # from the checkout, like RESULTS_DIR
LANGUAGE = "zh"


def presidio_spans() -> Callable[[str], list[tuple[int, int]]]:
    """Spans found by Presidio's pattern recognizers (no NLP model)."""
    # presidio ships no type information (an optional extra, '.[presidio]')
    from presidio_analyzer import (  # type: ignore[import-not-found]
        AnalyzerEngine,
        RecognizerRegistry,
    )
    from presidio_analyzer.nlp_engine import (  # type: ignore[import-not-found]
        NlpArtifacts,
        NlpEngine,
    )
    from presidio_analyzer.predefined_recognizers import (  # type: ignore[import-not-found]
        CreditCardRecognizer,
        EmailRecognizer,
        IpRecognizer,
        MacAddressRecognizer,
        PhoneRecognizer,
        UuidRecognizer,
    )

    class NoNlpEngine(NlpEngine):  # type: ignore[misc]
        """No tokens, no entities: what the pattern recognizers need and nothing more."""

        def load(self) -> None:
            pass

        def is_loaded(self) -> bool:
            return True

        def process_text(self, text: str, language: str) -> NlpArtifacts:
            return NlpArtifacts(
                entities=[],
                tokens=[],
                tokens_indices=[],
                lemmas=[],
                nlp_engine=self,
                language=language,
            )

        def process_batch(
            self,
            texts: Iterable[str],
            language: str,
            batch_size: int = 1,
            n_process: int = 1,
            **kwargs: object,
        ) -> Iterable[tuple[str, NlpArtifacts]]:
            return ((text, self.process_text(text, language)) for text in texts)

        def is_stopword(self, word: str, language: str) -> bool:
            return False

        def is_punct(self, word: str, language: str) -> bool:
            return False

        def get_supported_entities(self) -> list[str]:
            return []

        def get_supported_languages(self) -> list[str]:
            return [LANGUAGE]

    registry = RecognizerRegistry(supported_languages=[LANGUAGE])
    for recognizer in (
        PhoneRecognizer(supported_language=LANGUAGE, supported_regions=("CN",)),
        CreditCardRecognizer(supported_language=LANGUAGE),
        EmailRecognizer(supported_language=LANGUAGE),
        IpRecognizer(supported_language=LANGUAGE),
        MacAddressRecognizer(supported_language=LANGUAGE),
        UuidRecognizer(supported_language=LANGUAGE),
    ):
        registry.add_recognizer(recognizer)
    engine = AnalyzerEngine(
        registry=registry, nlp_engine=NoNlpEngine(), supported_languages=[LANGUAGE]
    )

    def spans(text: str) -> list[tuple[int, int]]:
        return [(r.start, r.end) for r in engine.analyze(text=text, language=LANGUAGE)]

    return spans


def ours(text: str) -> list[tuple[int, int]]:
    return [(d.start, d.end) for d in find_identifiers(text)]


def cpu_us_per_text(spans: Callable[[str], object], corpus: list[Labelled]) -> float:
    start = time.thread_time()
    for item in corpus:
        spans(item.text)
    return (time.thread_time() - start) / len(corpus) * 1e6


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--corpus", type=Path, default=CORPUS)
    parser.add_argument("--json", type=Path, default=RESULTS_DIR / "presidio.json")
    args = parser.parse_args(argv)
    corpus = load_corpus(args.corpus)
    contenders = {"pseudostream": ours, "Presidio patterns": presidio_spans()}
    for spans in contenders.values():  # warm-up: compiled patterns, loaded data
        spans(corpus[0].text)
    results = {name: evaluate(corpus, spans) for name, spans in contenders.items()}
    costs = {name: cpu_us_per_text(spans, corpus) for name, spans in contenders.items()}
    print(f"corpus {args.corpus}: {len(corpus)} texts\n")
    for name, tallies in results.items():
        print(f"## {name}\n\n{markdown_table({name: tallies})}\n")
    print(f"## side by side\n\n{markdown_table(results)}\n")
    for name, cost in costs.items():
        print(f"{name}: {cost:,.1f} µs CPU per text")
    write_json(
        args.json,
        {
            "benchmark": "presidio_compare",
            "texts": len(corpus),
            "contenders": {
                name: {
                    "fully_scrubbed": round(totals(tallies)[0].share, 4),
                    "clean_unchanged": round(totals(tallies)[1].share, 4),
                    "cpu_us_per_text": round(costs[name], 1),
                    "per_kind": {k: round(t.share, 4) for k, t in sorted(tallies.items())},
                }
                for name, tallies in results.items()
            },
            **machine(),
        },
    )
    return 0
