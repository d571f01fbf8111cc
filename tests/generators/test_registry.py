"""The generator registry: built-ins, custom registrations, entry points, missing extras."""

from __future__ import annotations

import sys
from importlib.metadata import EntryPoint

import pytest

from promptmill import get_generator, register_generator
from promptmill.errors import IdentifierError, MissingDependency, ParamError
from promptmill.generators import generator_class, known_providers
from promptmill.generators.openai_ import HTTPGenerator


def test_unknown_provider_lists_the_known_ones() -> None:
    with pytest.raises(IdentifierError, match="known are .*openai"):
        get_generator("nosuch!model")


def test_register_a_lazy_loader() -> None:
    calls = []

    def load() -> type[HTTPGenerator]:
        calls.append(1)
        return HTTPGenerator

    register_generator("lazy-one", load)
    assert not calls
    generator = get_generator("lazy-one!m,api_base=http://127.0.0.1:9/v1")
    assert calls and isinstance(generator, HTTPGenerator)


def test_third_party_generator_through_entry_points(monkeypatch: pytest.MonkeyPatch) -> None:
    point = EntryPoint(name="thirdparty", value="promptmill.generators.openai_:HTTPGenerator",
                       group="promptmill.generators")
    monkeypatch.setattr("promptmill.generators.entry_points",
                        lambda group: [point] if group == "promptmill.generators" else [])
    assert "thirdparty" in known_providers()
    assert generator_class("thirdparty") is HTTPGenerator


def test_an_entry_point_cannot_take_over_a_built_in_provider(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # An installed package naming itself "openai" must not receive the user's OpenAI key;
    # nor does resolving a built-in read every installed package's metadata (start-up time).
    point = EntryPoint(name="openai", value="promptmill.generators.openai_:HTTPGenerator",
                       group="promptmill.generators")
    looked: list[str] = []

    def entry_points(group: str) -> list[EntryPoint]:
        looked.append(group)
        return [point]

    monkeypatch.setattr("promptmill.generators.entry_points", entry_points)
    assert generator_class("openai") is not HTTPGenerator
    assert generator_class("openai").__name__ == "OpenAIGenerator"
    assert looked == []


def test_missing_extra_names_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "llama_cpp", None)  # as if not installed
    monkeypatch.delitem(sys.modules, "promptmill.generators.llamacpp_", raising=False)
    with pytest.raises(MissingDependency, match=r"promptmill\[local\]"):
        generator_class("llamacpp")


def test_unknown_generator_option_is_refused() -> None:
    with pytest.raises(ParamError, match="max_conections"):
        get_generator("openai!gpt-4o-mini,max_conections=3")
