"""Generated code (the compiled contracts and policy) is debuggable: its source is in
``linecache`` under a file name of its own for as long as the function lives."""

from __future__ import annotations

import gc
import inspect
import linecache
import traceback
from typing import Any

import pytest

from keys import Keyring
from processor.pipeline.codegen import Source, compile_function, source_of
from processor.pipeline.process import Pipeline
from processor.pipeline.validate import Validator
from schemas import load_contract


class _Unreadable(dict[str, Any]):
    """An object whose first read fails. A dict: the compiled pipeline (setup.py) refuses
    anything else at the ``Validator``'s own boundary, before the generated code."""

    def get(self, *_: object) -> Any:
        raise AttributeError("get")


def test_when_generated_code_raises_then_the_traceback_shows_its_source_line() -> None:
    validator = Validator(load_contract("behaviour/1"))
    event = _Unreadable()  # fails on the generated function's first read
    with pytest.raises(AttributeError):
        validator(event)
    try:
        validator(event)
    except AttributeError:
        shown = traceback.format_exc()
    assert 'File "<pseudostream generated validate behaviour/1 #' in shown
    assert "in validate\n    v = event.get('event_id')\n" in shown


def test_generated_functions_of_one_label_get_file_names_of_their_own() -> None:
    src = Source()
    src("def f(x):")
    src("    return x + 1")
    first = compile_function(src, "f", {}, "test f")
    second = compile_function(src, "f", {}, "test f")
    names = (first.__code__.co_filename, second.__code__.co_filename)
    assert names[0] != names[1]
    assert [linecache.getline(name, 2) for name in names] == ["    return x + 1\n"] * 2
    assert inspect.getsource(second) == source_of(second)  # what pdb's `ll` shows


def test_when_a_generated_function_is_collected_then_its_source_leaves_linecache() -> None:
    src = Source()
    src("def g():")
    src("    return 1")
    function = compile_function(src, "g", {}, "test g")
    name = function.__code__.co_filename
    assert linecache.getline(name, 1) == "def g():\n"
    linecache.checkcache()  # keeps entries that have no file behind them
    assert name in linecache.cache
    del function
    gc.collect()
    assert name not in linecache.cache


def test_a_pipeline_lists_the_source_of_every_function_it_generated() -> None:
    code = dict(Pipeline(Keyring.generate()).generated_code())
    assert list(code) == [
        "validate behaviour/1",
        "validate device/1",
        "validate consent/1",
        "project route recommendation variant full (clean.recommendation/1)",
        "project route recommendation variant reduced (clean.recommendation/1)",
        "project route ad-analytics variant full (clean.ad-analytics/1)",
        "project route ad-analytics variant limit_ad_tracking (clean.ad-analytics/1)",
    ]
    assert all(source.startswith(("def validate(", "def project(")) for source in code.values())
    validator = Validator(load_contract("consent/1"))
    assert validator.source == source_of(validator._validate)
