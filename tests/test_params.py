"""GenerateParams: validation, merging, per-backend translation."""

from __future__ import annotations

import logging

import pytest

from promptmill import GenerateParams, get_generator
from promptmill.errors import ParamError
from promptmill.params import make_params, translate


def test_merge_gives_precedence_to_the_override_and_keeps_extra() -> None:
    base = make_params({"temperature": 0.2, "max_tokens": 10, "extra.repetition_penalty": 1.1})
    merged = base.merge(make_params({"temperature": 0.9, "extra.top_k": 5}))
    assert merged.temperature == 0.9
    assert merged.max_tokens == 10
    assert merged.extra == {"repetition_penalty": 1.1, "top_k": 5}


def test_with_overrides_one_field() -> None:
    params = GenerateParams(temperature=0.1).with_(seed=7)
    assert (params.temperature, params.seed) == (0.1, 7)


def test_generator_with_returns_a_new_generator() -> None:
    generator = get_generator("openai!gpt-4o-mini,temperature=0.5")
    hotter = generator.with_(temperature=1.0, max_tokens=3)
    assert generator.params.temperature == 0.5
    assert (hotter.params.temperature, hotter.params.max_tokens) == (1.0, 3)


def test_unknown_parameter_names_the_fix() -> None:
    with pytest.raises(ParamError, match=r"extra\.tempreature"):
        make_params({"tempreature": 1})


def test_invalid_value_names_the_field() -> None:
    with pytest.raises(ParamError, match="top_p"):
        make_params({"top_p": 3})


def test_stop_string_becomes_a_list() -> None:
    assert make_params({"stop": "###"}).stop == ["###"]


def test_translate_drops_unsupported_with_one_warning(caplog: pytest.LogCaptureFixture) -> None:
    params = make_params({"temperature": 0.5, "presence_penalty": 0.1})
    with caplog.at_level(logging.WARNING, logger="promptmill"):
        kept = translate(params, "toy", {"temperature"})
    assert kept.presence_penalty is None and kept.temperature == 0.5
    assert len(caplog.records) == 1 and "presence_penalty" in caplog.text


def test_translate_refuses_what_dropping_would_change_silently() -> None:
    with pytest.raises(ParamError, match="logprobs"):
        translate(make_params({"logprobs": True}), "toy", {"temperature"})


def test_n_is_never_dropped() -> None:
    assert translate(make_params({"n": 3}), "toy", set()).n == 3
