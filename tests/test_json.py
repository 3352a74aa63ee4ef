"""JSON from files the product did not write: bounded depth, integers and strings."""

from __future__ import annotations

import json

import pytest

from vmafx_saliency._json import json_loads


@pytest.mark.parametrize("depth", [65, 100_000], ids=["over-the-cap", "past-the-recursion-limit"])
def test_deeply_nested_json_is_a_decode_error(depth: int) -> None:
    text = "[" * depth + "]" * depth
    with pytest.raises(json.JSONDecodeError, match=r"nested deeper than 64 levels"):
        json_loads(text)
    with pytest.raises(json.JSONDecodeError, match=r"nested deeper than 64 levels"):
        json_loads(('{"a": ' * depth + "1" + "}" * depth).encode())


def test_json_at_the_cap_and_its_options_are_kept() -> None:
    assert json_loads("[" * 64 + "]" * 64) == json.loads("[" * 64 + "]" * 64)
    assert json_loads('{"x": 1.5}', parse_float=str) == {"x": "1.5"}
    with pytest.raises(ValueError, match="NaN"):
        json_loads("NaN", parse_constant=lambda name: (_ for _ in ()).throw(ValueError(name)))


# --- outputs: exclusive without --force, leftovers of killed runs swept ------------


def test_json_loads_refuses_what_python_cannot_hold_or_write_back_as_malformed_json() -> None:
    # Python's cap on int(): 4,300 digits read, one more is malformed JSON, not a ValueError.
    assert json_loads("[" + "9" * 4300 + "]") == [int("9" * 4300)]
    assert json_loads("-" + "9" * 4300) == -int("9" * 4300)
    with pytest.raises(json.JSONDecodeError, match=r"an integer of 4,301 digits"):
        json_loads('{"n": ' + "9" * 4301 + "}")
    # A pair of surrogates is one character; a lone one cannot be written as UTF-8.
    assert json_loads('"\\ud83d\\ude00"') == "\U0001f600"
    for doc in ('{"k": "\\ud800"}', '{"\\udfff": 1}', '["a", ["\\ud800x"]]'):
        with pytest.raises(json.JSONDecodeError, match=r"a string holds a lone surrogate"):
            json_loads(doc)
