"""Identifiers: parse, format back, keep types, never echo a secret."""

from __future__ import annotations

import pytest

from promptmill import get_generator
from promptmill.errors import IdentifierError
from promptmill.identifiers import Secret, format_value, parse_identifier, parse_value


def test_parse_full_identifier_keeps_types() -> None:
    ident = parse_identifier("openai!gpt-4o-mini,temperature=0.7,max_tokens=256,logprobs=true")
    assert ident.provider == "openai"
    assert ident.model == "gpt-4o-mini"
    assert ident.options == {"temperature": 0.7, "max_tokens": 256, "logprobs": True}
    assert isinstance(ident.options["max_tokens"], int)


@pytest.mark.parametrize(
    ("text", "provider"),
    [
        ("gpt-4o-mini", "openai"),
        ("o3-mini,max_tokens=5", "openai"),
        ("/models/smol.gguf,n_ctx=512", "llamacpp"),
        ("my-model,api_base=http://localhost:8000/v1", "http"),
    ],
)
def test_provider_is_inferred_where_it_can_be(text: str, provider: str) -> None:
    assert parse_identifier(text).provider == provider


def test_provider_that_cannot_be_inferred_says_how_to_name_it() -> None:
    with pytest.raises(IdentifierError, match="PROVIDER!mistery-model"):
        parse_identifier("mistery-model")


@pytest.mark.parametrize(
    "value",
    ["a,b", "x=y", 'say "hi"', "12", "true", "", "with space", "null", "1e5", "-3"],
)
def test_string_values_round_trip_even_with_commas_and_equals(value: str) -> None:
    assert parse_value(format_value(value)) == value


def test_lists_and_quoted_values() -> None:
    ident = parse_identifier('openai!gpt-4o,stop=["###","a,b"],extra.user="x,y"')
    assert ident.options["stop"] == ["###", "a,b"]
    assert ident.options["extra.user"] == "x,y"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("openai!gpt-4o,temperature", "malformed option 'temperature' in model identifier: "
         'write key=value (quote values holding commas: stop="a,b")'),
        ("openai!,temperature=1", "model identifier ',temperature=1' has no model name: "
         "write 'provider!model,key=value'"),
        ("op enai!gpt-4o", "malformed provider 'op enai' in model identifier: use letters, "
         "digits, '_' or '-' before the '!'"),
        ('openai!gpt-4o,stop="unterminated', "unbalanced quote or bracket in model identifier "
         """'gpt-4o,stop="unterminated': close it (quote a value holding commas whole: """
         'stop="a,b")'),
        ("openai!gpt-4o,max_tokens=1,max_tokens=2",
         "option 'max_tokens' given twice in model identifier: keep one"),
        ("openai!gpt-4o,top k=1", "malformed option name 'top k' in model identifier: use "
         "letters, digits, '_', '.' or '-' (extra.NAME for backend ones)"),
        ("", "empty model identifier: pass one like 'openai!gpt-4o-mini'"),
        # A key in the string is never quoted back, whatever the mistake.
        ("openai!gpt-4o,api_key=sk-proj-abcdefghij0123456789,bogus", "malformed option "
         """'bogus' in model identifier: write key=value (quote values holding commas: """
         'stop="a,b")'),
    ],
)
def test_malformed_identifiers_are_refused_with_a_clear_error(text: str, message: str) -> None:
    """The whole message: what is wrong, where in the string, and how to write it instead."""
    with pytest.raises(IdentifierError) as info:
        parse_identifier(text)
    assert str(info.value) == message
    assert "abcdefghij0123456789" not in str(info.value)


def test_to_identifier_round_trips_through_get_generator() -> None:
    text = 'openai!gpt-4o-mini,api_base=http://localhost:9/v1,temperature=0.7,max_tokens=256,stop="a,b"'
    generator = get_generator(text)
    again = get_generator(generator.to_identifier())
    assert again.to_identifier() == generator.to_identifier()
    assert again.params == generator.params
    assert again.params.max_tokens == 256
    assert again.params.stop == ["a,b"]


def test_api_key_in_a_string_is_accepted_but_never_printed_back() -> None:
    secret = "sk-canary-0123456789abcdef"
    generator = get_generator(f"openai!gpt-4o-mini,api_key={secret},temperature=0")
    assert generator.api_key() == secret
    for shown in (generator.to_identifier(), repr(generator), str(generator.identifier()),
                  repr(generator.identifier())):
        assert secret not in shown
    assert "api_key=***" in generator.to_identifier()
    # The redacted form reads back as "take the key from the environment".
    assert get_generator(generator.to_identifier()).api_key() != secret


def test_secret_hides_itself() -> None:
    secret = Secret("sk-abc")
    assert "sk-abc" not in f"{secret} {secret!r} {secret:>10}"
    assert secret.reveal() == "sk-abc"
