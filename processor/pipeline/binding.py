"""The trust boundary between input topics: which schemas each topic may carry.

Apps write ``raw.behaviour`` and ``raw.device``; only the account service writes
``consent``. A record's ``schema`` field is chosen by whoever wrote it, so it cannot decide
alone what a record may do: an app that writes ``consent/1`` to ``raw.behaviour`` must not
change anyone's consent. The binding names, per logical input topic, the schemas it admits
(``fnmatch`` patterns such as ``behaviour/*``); anything else is quarantined as
``schema_not_allowed_on_topic``.

Written as one setting: ``raw.behaviour=behaviour/*; raw.device=device/*; consent=consent/*``
(``;`` between topics, ``,`` between the patterns of one topic).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from fnmatch import fnmatchcase

from processor.errors import ConfigError
from schemas import RAW_CONTRACTS

INPUT_TOPICS = ("raw.behaviour", "raw.device", "consent")
DEFAULT_TOPIC_SCHEMAS = "raw.behaviour=behaviour/*; raw.device=device/*; consent=consent/*"
# Bare lines given to `pseudostream transform` (a trusted file: the schema decides, as the
# command always did). The worker never uses this name: its sources are INPUT_TOPICS.
TRUSTED_SOURCE = "stdin"

TopicSchemas = Mapping[str, tuple[str, ...]]


def parse_topic_schemas(text: str) -> dict[str, tuple[str, ...]]:
    """``topic=pattern[,pattern...]; ...`` -> {topic: patterns}; ConfigError names the
    setting and what is wrong."""
    binding: dict[str, tuple[str, ...]] = {}
    for part in text.split(";"):
        if not part.strip():
            continue
        topic, equals, patterns = part.partition("=")
        topic = topic.strip()
        names = tuple(p.strip() for p in patterns.split(",") if p.strip())
        if not equals or not names:
            raise ConfigError(f"topic_schemas: {part.strip()!r} is not topic=schema-pattern")
        if topic not in INPUT_TOPICS:
            raise ConfigError(
                f"topic_schemas: {topic!r} is no input topic (one of {', '.join(INPUT_TOPICS)})"
            )
        if topic in binding:
            raise ConfigError(f"topic_schemas: {topic} is named twice")
        for name in names:
            if not any(fnmatchcase(schema, name) for schema in RAW_CONTRACTS):
                raise ConfigError(
                    f"topic_schemas: {name!r} matches no schema ({', '.join(RAW_CONTRACTS)})"
                )
        binding[topic] = names
    return binding


def format_topic_schemas(table: Mapping[str, object]) -> str:
    """The setting's text from a TOML table ``{topic = "pattern" or ["pattern", ...]}``."""
    parts = []
    for topic, patterns in table.items():
        names = [patterns] if isinstance(patterns, str) else patterns
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise ConfigError(f"topic_schemas: {topic} must name a schema pattern or a list")
        parts.append(f"{topic}={','.join(names)}")
    return "; ".join(parts)


def admitted_schemas(binding: TopicSchemas, schemas: Iterable[str]) -> dict[str, frozenset[str]]:
    """{topic: the known schemas its patterns admit}, so the hot path is one set lookup."""
    known = tuple(schemas)
    return {
        topic: frozenset(s for s in known if any(fnmatchcase(s, p) for p in patterns))
        for topic, patterns in binding.items()
    }
