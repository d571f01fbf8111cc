"""GenerateParams: validation, merging, per-backend translation."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from promptmill import GenerateParams, get_generator
from promptmill.errors import ParamError, UsageError
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


# -- the same values as the pydantic model GenerateParams was ------------------------------

def _pydantic_reference() -> type:
    """GenerateParams as it was, a pydantic model: the record it now is must accept, convert
    and refuse exactly what this did (pydantic stays a dependency for request files)."""

    from pydantic import BaseModel, ConfigDict, Field, field_validator

    class Reference(BaseModel):
        model_config = ConfigDict(extra="forbid", frozen=True)

        temperature: float | None = Field(default=None, ge=0)
        top_p: float | None = Field(default=None, gt=0, le=1)
        max_tokens: int | None = Field(default=None, gt=0)
        n: int | None = Field(default=None, gt=0)
        stop: list[str] | None = None
        seed: int | None = None
        logprobs: bool | None = None
        top_logprobs: int | None = Field(default=None, ge=0, le=20)
        prompt_logprobs: int | None = Field(default=None, ge=0, le=20)
        presence_penalty: float | None = Field(default=None, ge=-2, le=2)
        frequency_penalty: float | None = Field(default=None, ge=-2, le=2)
        response_format: dict[str, Any] | None = None
        extra: dict[str, Any] = Field(default_factory=dict)

        @field_validator("stop", mode="before")
        @classmethod
        def _stop_as_list(cls, value: Any) -> Any:
            if isinstance(value, str):
                pieces = [piece for piece in value.split(";") if piece]
                return pieces or [value]
            return value

    return Reference


_SCALARS = [None, 0, 1, 2, 5, -1, -3, 21, 2**70, True, False, 0.0, 1.0, 0.5, 5.0, 5.5, -2.0,
            2.5, float("nan"), float("inf"), float("-inf"), "0", "1", "5", " 5 ", "5.0", "5.5",
            "0.5", " 0.5 ", "1e-3", "1e2", "1_000", "0x10", "+5", "-1", "nan", "inf", "abc",
            "", "true", "True", "YES", " yes ", "off", "n", "t", b"5", b"0.5", b"true",
            bytearray(b"1"), b"\xff", [1], ["a"], ("a",), {"a": 1}, {1: 2}, object()]
_CONTAINERS = [None, "a;b", ";", "", "###", "a;;b", ["a", "b"], ["a", 1], ("x", "y"),
               {"z"}, frozenset({"q"}), [], [b"x"], [None], 5, b"ab", {"a": 1}, {}, {1: 2},
               {b"k": 1}, [("a", 1)], "x", [bytearray(b"y")], {(1, 2): 1},
               ["caf\u00e9", b"caf\xc3\xa9"], [b"\xff"]]


def _outcome(make: Any, field: str, value: Any) -> tuple[str, Any]:
    try:
        made = make(**{field: value})
    except ValueError:  # pydantic's ValidationError and our InvalidParam both are
        return ("refused", None)
    got = getattr(made, field)
    return ("accepted", (type(got).__name__, repr(got)))


@pytest.mark.parametrize("field", sorted(GenerateParams.model_fields))
def test_every_value_is_taken_or_refused_as_the_pydantic_model_did(field: str) -> None:
    reference = _pydantic_reference()
    values = _CONTAINERS if field in ("stop", "response_format", "extra") else _SCALARS
    for value in values:
        assert _outcome(GenerateParams, field, value) == _outcome(reference, field, value), \
            (field, value)


def test_dumps_copies_and_the_fields_given_match_the_pydantic_model() -> None:
    reference = _pydantic_reference()
    given = [{}, {"temperature": 0, "stop": "a;b"}, {"seed": None, "extra": {"k": [1]}},
             {"max_tokens": "7", "logprobs": "yes", "top_logprobs": 3.0,
              "response_format": {"type": "json_object"}}]
    for fields in given:
        ours, theirs = GenerateParams(**fields), reference(**fields)
        for options in ({}, {"exclude_unset": True}, {"exclude_none": True},
                        {"exclude_unset": True, "exclude_none": True},
                        {"exclude_none": True, "exclude": {"n"}}):
            assert ours.model_dump(**options) == theirs.model_dump(**options), options
            assert [type(v) for v in ours.model_dump(**options).values()] == \
                [type(v) for v in theirs.model_dump(**options).values()]
        assert ours.model_fields_set == theirs.model_fields_set
        assert repr(ours).replace("GenerateParams", "") == repr(theirs).replace("Reference", "")
        update = {"seed": 9, "n": 2}
        assert ours.model_copy(update=update).model_dump(exclude_unset=True) == \
            theirs.model_copy(update=update).model_dump(exclude_unset=True)
        assert dict(ours) == dict(theirs)
    assert list(GenerateParams.model_fields) == list(reference.model_fields)


def test_params_are_immutable_comparable_and_survive_pickling() -> None:
    import pickle

    params = GenerateParams(temperature=0.5, stop=["x"], extra={"top_k": 3})
    with pytest.raises(AttributeError):
        params.temperature = 1.0  # type: ignore[misc]
    assert params == GenerateParams(stop=["x"], extra={"top_k": 3}, temperature=0.5)
    assert params != GenerateParams(temperature=0.6, stop=["x"], extra={"top_k": 3})
    copied = pickle.loads(pickle.dumps(params))
    assert copied == params and copied.model_fields_set == params.model_fields_set
    with pytest.raises(ValueError, match="temperature"):
        GenerateParams(temperature=-1)
    with pytest.raises(ParamError, match="Extra inputs"):
        GenerateParams(temprature=1)


@pytest.mark.parametrize(("identifier", "meant"), [
    ("openai!gpt-4o-mini,base_url=http://127.0.0.1:9/v1", "api_base"),  # the OpenAI SDK's name
    ("http!m,api-base=http://127.0.0.1:9/v1", "api_base"),
    ("openai!gpt-4o-mini,max_new_tokens=5", "max_tokens"),  # transformers'
    ("anthropic!claude-3-5-haiku-latest,temprature=0.3", "temperature"),
    ("vllm!m,context_length=4096", "max_model_len"),
    ("opneai!gpt-4o-mini", "openai"),
])
def test_an_unknown_name_is_answered_with_the_one_meant(identifier: str, meant: str) -> None:
    with pytest.raises(UsageError, match=rf"\(did you mean {meant}\?\)") as raised:
        get_generator(identifier)
    assert "\n" not in str(raised.value)


def test_an_unknown_param_is_answered_with_the_one_meant_and_nothing_close_is_guessed() -> None:
    with pytest.raises(ParamError, match=r"'max_completion_tokens' \(did you mean max_tokens\?\)"):
        make_params({"max_completion_tokens": 3}, where="--param")
    with pytest.raises(ParamError) as raised:
        make_params({"frobnicate": 3})
    assert "did you mean" not in str(raised.value) and "extra.frobnicate" in str(raised.value)
