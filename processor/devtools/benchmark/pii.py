"""Accuracy of a free-text detector on a labelled corpus (``tests/data/pii/corpus.jsonl``),
and the scrubber's time on adversarial inputs.

A text with personal data counts as *fully scrubbed* when every letter, digit and Chinese
character of each labelled value lies inside a detected span (separators at its edges may
stay); a clean text counts as *unchanged* when nothing at all is detected in it. The same
measure serves the accuracy test and ``bench/presidio_compare.py``, so the two detectors
are judged alike.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import orjson

from processor.pipeline.scrub import scrub_text

Spans = Callable[[str], Iterable[tuple[int, int]]]
CLEAN_PREFIX = "clean:"


@dataclass(frozen=True, slots=True)
class Labelled:
    text: str
    kind: str  # a kind of personal data, or "clean:<what tricky number>"
    values: tuple[str, ...]

    @property
    def clean(self) -> bool:
        return not self.values


@dataclass(slots=True)
class Tally:
    texts: int = 0
    passed: int = 0  # fully scrubbed, or unchanged for clean texts

    @property
    def share(self) -> float:
        return self.passed / self.texts if self.texts else 1.0


def load_corpus(path: Path) -> list[Labelled]:
    lines = path.read_bytes().splitlines()
    corpus = []
    for line in lines:
        item = orjson.loads(line)
        corpus.append(Labelled(item["text"], item["kind"], tuple(item["pii"])))
    return corpus


def fully_covered(text: str, values: Iterable[str], spans: list[tuple[int, int]]) -> bool:
    """True when each occurrence of each value has all its alphanumeric characters covered."""
    covered = bytearray(len(text))
    for start, end in spans:
        covered[start:end] = b"\x01" * (end - start)
    for value in values:
        at = text.find(value)
        if at < 0:
            raise ValueError(f"labelled value {value!r} is not in {text!r}")
        while at >= 0:
            if any(
                char.isalnum() and not covered[at + offset] for offset, char in enumerate(value)
            ):
                return False
            at = text.find(value, at + 1)
    return True


def evaluate(corpus: list[Labelled], spans: Spans) -> dict[str, Tally]:
    """Per kind (and per clean category), how many texts passed."""
    tallies: dict[str, Tally] = {}
    for item in corpus:
        found = list(spans(item.text))
        passed = not found if item.clean else fully_covered(item.text, item.values, found)
        tally = tallies.setdefault(item.kind, Tally())
        tally.texts += 1
        tally.passed += passed
    return tallies


def totals(tallies: dict[str, Tally]) -> tuple[Tally, Tally]:
    """(texts with personal data, clean texts) over all kinds."""
    pii, clean = Tally(), Tally()
    for kind, tally in tallies.items():
        total = clean if kind.startswith(CLEAN_PREFIX) else pii
        total.texts += tally.texts
        total.passed += tally.passed
    return pii, clean


def markdown_table(columns: dict[str, dict[str, Tally]]) -> str:
    """One row per kind, one column per detector: the share passed (and the counts)."""
    kinds = sorted(
        {kind for tallies in columns.values() for kind in tallies},
        key=lambda kind: (kind.startswith(CLEAN_PREFIX), kind),
    )
    header = ["kind", "texts", *columns]
    rows = [header, ["---", "---:", *(["---:"] * len(columns))]]
    for kind in kinds:
        texts = next(t[kind].texts for t in columns.values() if kind in t)
        rows.append([kind, str(texts), *(_cell(t.get(kind)) for t in columns.values())])
    for label, index in (
        ("all with personal data: fully scrubbed", 0),
        ("all clean: unchanged", 1),
    ):
        sums = {name: totals(tallies)[index] for name, tallies in columns.items()}
        texts = next(iter(sums.values())).texts
        rows.append([f"**{label}**", str(texts), *(_cell(t) for t in sums.values())])
    return "\n".join("| " + " | ".join(row) + " |" for row in rows)


def _cell(tally: Tally | None) -> str:
    if tally is None:
        return "-"
    return f"{100 * tally.share:.1f} % ({tally.passed})"


# Long runs of what each pattern consumes, and of its anchors: the inputs on which a
# backtracking pattern would take more than linear time.
ADVERSARIAL = {
    "ascii letters": "a",
    "digits": "1",
    "spaced digits": "1 ",
    "dotted digits": "1.",
    "local part and at": "a.",
    "ats": "a@",
    "spelled at": "a at ",
    "hex with colons": "a:",
    "hex with dashes": "ab-",
    "labels": "微信",
    "plates": "京A1",
    "roads with numbers": "建国路1号",
    "admin names": "北京市朝阳区",
    "estates": "幸福小区1栋",
    "chinese numerals": "一二三四五六七八九〇",
    "zero-width digits": "1\u200b",
}


def scrub_seconds(text: str) -> float:
    """CPU time of this thread to scrub ``text`` whole (other processes do not count)."""
    start = time.thread_time()
    scrub_text(text)
    return time.thread_time() - start


def repeated(unit: str, chars: int) -> str:
    return unit * (chars // len(unit))
