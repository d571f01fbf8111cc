"""The llamacpp! backend, on the real embedded SmolLM2-135M model (the `local` tier).

Every test here needs llama-cpp-python and the model file: where either is missing they skip,
and a skipped test of the ``local`` tier fails the run (tests/conftest.py) unless the tier is
left out on purpose (``PROMPTMILL_SKIP_TIERS=local``). The embedded-model lookup and its
error messages, which need neither, are in test_embedded.py and run everywhere.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from promptmill import get_generator
from promptmill.errors import FatalRequestError, MissingDependency, ParamError, UsageError
from promptmill.generators import embedded
from promptmill.generators.base import GenerationRequest, GenerationResult, Generator
from promptmill.params import make_params

pytestmark = pytest.mark.local

QUESTION = [{"role": "user", "content": "What is the capital of France?"}]


def request(rid: str = "r", *, messages: Any = None, prompt: str | None = None,
            **params: Any) -> GenerationRequest:
    params.setdefault("max_tokens", 8)
    return GenerationRequest(rid, make_params(params), messages=messages, prompt=prompt)


def run(gen: Generator, *requests: GenerationRequest) -> list[GenerationResult]:
    return asyncio.run(gen.generate(list(requests)))


def texts(result: GenerationResult) -> list[str]:
    assert result.error is None, result.error
    return [response.text for response in result.responses]


@pytest.fixture(scope="module")
def model_path() -> Path:
    pytest.importorskip("llama_cpp")
    try:
        return embedded.embedded_model_path()
    except MissingDependency as exc:
        pytest.skip(str(exc))


@pytest.fixture(scope="module")
def gen(model_path: Path) -> Iterator[Generator]:
    """The embedded model, loaded once for the module, with a small context."""
    generator = get_generator(f"llamacpp!{model_path},n_ctx=512")
    asyncio.run(generator.start())
    yield generator
    asyncio.run(generator.close())


@pytest.fixture(scope="module")
def fresh_gen(model_path: Path) -> Iterator[Generator]:
    """The same model with no prompt cache and no extra buffer types (the AMX fallback)."""
    generator = get_generator(
        f"llamacpp!{model_path},n_ctx=512,cache_prompt=false,use_extra_bufts=false"
    )
    asyncio.run(generator.start())
    yield generator
    asyncio.run(generator.close())


@pytest.fixture(scope="module")
def vocab(model_path: Path) -> Any:
    """The model's tokenizer alone, to count tokens independently of the generator."""
    import llama_cpp

    return llama_cpp.Llama(str(model_path), vocab_only=True, verbose=False)


# -- the embedded model --------------------------------------------------------------------


def test_embedded_identifier_names_the_model_not_its_path(model_path: Path) -> None:
    # The path lies inside the virtual environment: a job named by it would be refused
    # when run again from a re-created environment.
    assert embedded.embedded_identifier() == "llamacpp!smollm2"
    assert model_path.name == "SmolLM2-135M-Instruct.Q4_1.gguf" and model_path.is_file()
    generator = get_generator("smollm2")
    assert generator.model_path == model_path
    assert generator.to_identifier() == "llamacpp!smollm2"
    assert get_generator("smollm2,temperature=0.5").to_identifier() == (
        "llamacpp!smollm2,temperature=0.5")


# -- identifiers and readiness ----------------------------------------------------------------


def test_identifier_round_trips(model_path: Path) -> None:
    for ident in (
        f"llamacpp!{model_path},n_ctx=512",
        f"llamacpp!{model_path},n_ctx=1024,n_threads=2,chat_format=chatml,temperature=0.5",
        f"llamacpp!{model_path},cache_prompt=false,use_extra_bufts=true,extra.top_k=40",
    ):
        assert get_generator(ident).to_identifier() == ident


def test_bad_options_are_refused_before_loading(model_path: Path) -> None:
    with pytest.raises(ParamError, match="n_ctx"):
        get_generator(f"llamacpp!{model_path},n_ctx=big")
    with pytest.raises(ParamError, match="unknown option 'n_gpu'"):
        get_generator(f"llamacpp!{model_path},n_gpu=1")
    with pytest.raises(ParamError, match="extra.top_k"):
        get_generator(f"llamacpp!{model_path},extra.bogus=1").check_ready()


def test_missing_file_is_a_clear_error_before_the_job(tmp_path: Path) -> None:
    pytest.importorskip("llama_cpp")
    missing = tmp_path / "nowhere" / "model.gguf"
    gen = get_generator(f"llamacpp!{missing}")
    with pytest.raises(UsageError, match=rf"{missing} does not exist"):
        gen.check_ready()
    with pytest.raises(UsageError, match="does not exist"):
        asyncio.run(gen.start())
    not_gguf = tmp_path / "model.gguf"
    not_gguf.write_text("hello")
    with pytest.raises(UsageError, match="not a GGUF file"):
        get_generator(f"llamacpp!{not_gguf}").check_ready()


# -- generation ---------------------------------------------------------------------------------


def test_chat_uses_the_gguf_chat_template(gen: Generator, vocab: Any, model_path: Path) -> None:
    import jinja2

    (result,) = run(gen, request(messages=QUESTION, temperature=0))
    assert texts(result)[0].strip()
    assert result.responses[0].finish_reason in ("stop", "length")
    # SmolLM2's own template adds its default system prompt and the <|im_start|> markers.
    template = vocab.metadata["tokenizer.chat_template"]
    rendered = jinja2.Environment().from_string(template).render(
        messages=QUESTION, add_generation_prompt=True
    )
    assert "You are a helpful AI assistant named SmolLM" in rendered
    expected = vocab.tokenize(rendered.encode(), add_bos=False, special=True)
    assert result.usage is not None and result.usage.prompt_tokens == len(expected)


def test_text_completion_and_usage(gen: Generator, vocab: Any) -> None:
    prompt = "The capital of France is"
    (result,) = run(gen, request(prompt=prompt, temperature=0, max_tokens=8))
    (text,) = texts(result)
    assert text.strip()
    assert result.usage is not None
    assert result.usage.prompt_tokens == len(vocab.tokenize(prompt.encode(), add_bos=False))
    assert 1 <= result.usage.completion_tokens <= 8
    finish = result.responses[0].finish_reason
    assert finish == ("length" if result.usage.completion_tokens == 8 else "stop")


def test_same_seed_same_answers_whatever_ran_before(gen: Generator,
                                                    fresh_gen: Generator) -> None:
    sampled = request("s", messages=QUESTION, temperature=1.0, seed=7, max_tokens=12)
    (alone,) = run(fresh_gen, sampled)
    histories = [
        [],
        [request("o", prompt="Once upon a time", temperature=1.0, max_tokens=6)],
        # The very same prompt just before: a full prompt-cache hit.
        [request("x", messages=QUESTION, seed=8, temperature=1.0, max_tokens=12)],
        [request("g", messages=QUESTION, temperature=0, max_tokens=3)],
    ]
    for history in histories:
        *_, after = run(gen, *history, sampled)
        assert texts(after) == texts(alone)
    (other,) = run(gen, request("x", messages=QUESTION, seed=8, temperature=1.0, max_tokens=12))
    assert texts(other) != texts(alone)


def test_n_samples_are_distinct_and_each_is_its_seed(gen: Generator,
                                                    fresh_gen: Generator) -> None:
    ask = request("n", prompt="My favourite animal is", n=4, seed=1, temperature=1.0,
                  max_tokens=10)
    (result,) = run(gen, ask)
    samples = texts(result)
    assert len(samples) == 4 and len(set(samples)) == 4
    assert result.usage is not None and 4 <= result.usage.completion_tokens <= 40
    # Sample i is what seed + i gives alone.
    singles = run(fresh_gen, *(
        request(str(i), prompt="My favourite animal is", seed=1 + i, temperature=1.0,
                max_tokens=10) for i in range(4)
    ))
    assert [texts(single)[0] for single in singles] == samples


def test_stop_sequences_are_honoured(gen: Generator) -> None:
    (free,) = run(gen, request(prompt="1, 2, 3, 4, 5,", temperature=0, max_tokens=12))
    assert " 7" in texts(free)[0]  # what the model says when not stopped
    (stopped,) = run(gen, request(prompt="1, 2, 3, 4, 5,", temperature=0, max_tokens=12,
                                  stop=[" 7"]))
    assert texts(stopped)[0] == texts(free)[0].split(" 7")[0]
    assert stopped.responses[0].finish_reason == "stop"


def test_logprobs_only_when_asked(gen: Generator) -> None:
    plain, asked = run(
        gen,
        request("plain", messages=QUESTION, temperature=0),
        request("asked", messages=QUESTION, temperature=0, logprobs=True, top_logprobs=3),
    )
    assert plain.responses[0].logprobs is None
    assert texts(asked) == texts(plain)
    logprobs = asked.responses[0].logprobs
    assert logprobs is not None and asked.usage is not None
    assert len(logprobs) == asked.usage.completion_tokens
    assert "".join(entry["token"] for entry in logprobs) == texts(asked)[0]
    for entry in logprobs:
        top = entry["top_logprobs"]
        assert len(top) == 3 and entry["logprob"] <= 0
        assert [t["logprob"] for t in top] == sorted((t["logprob"] for t in top), reverse=True)
        # Greedy decoding picks the most likely token.
        assert top[0]["token"] == entry["token"]
    (no_top,) = run(gen, request(prompt="Hello", temperature=0, logprobs=True))
    assert no_top.responses[0].logprobs
    assert all(entry["top_logprobs"] == [] for entry in no_top.responses[0].logprobs)


def test_logprobs_agree_with_llama_cpp_python(gen: Generator, model_path: Path) -> None:
    import llama_cpp

    prompt = "The quick brown fox"
    (result,) = run(gen, request(prompt=prompt, temperature=0, max_tokens=6, logprobs=True,
                                 top_logprobs=2))
    reference = llama_cpp.Llama(str(model_path), n_ctx=64, logits_all=True, verbose=False)
    try:
        out: Any = reference.create_completion(prompt, max_tokens=6, temperature=0, logprobs=2)
    finally:
        reference.close()
    expected = out["choices"][0]["logprobs"]
    ours = result.responses[0].logprobs
    assert ours is not None
    assert [entry["token"] for entry in ours] == expected["tokens"]
    assert [entry["logprob"] for entry in ours] == pytest.approx(expected["token_logprobs"],
                                                                 abs=1e-3)


def test_prompt_longer_than_the_context_fails_alone(gen: Generator) -> None:
    too_long, fine = run(
        gen,
        request("long", prompt="hello " * 600),
        request("fine", prompt="Hello", temperature=0, max_tokens=4),
    )
    assert isinstance(too_long.error, FatalRequestError)
    assert "n_ctx is 512" in str(too_long.error) and "raise n_ctx=" in str(too_long.error)
    assert texts(fine)[0]


def test_a_malformed_message_fails_alone(gen: Generator) -> None:
    broken, fine = run(
        gen,
        request("broken", messages=[{"role": "user"}]),
        request("fine", messages=QUESTION, temperature=0, max_tokens=4),
    )
    assert isinstance(broken.error, FatalRequestError)
    assert texts(fine)[0]


def test_backend_extra_sampling_parameters(gen: Generator) -> None:
    # top_k=1 is greedy whatever the temperature.
    greedy, top1 = run(
        gen,
        request("g", prompt="The sky is", temperature=0, max_tokens=6),
        request("k", prompt="The sky is", temperature=1.5, seed=3, max_tokens=6,
                **{"extra.top_k": 1}),
    )
    assert texts(top1) == texts(greedy)
    (bad,) = run(gen, request("b", prompt="x", **{"extra.nope": 1}))
    assert isinstance(bad.error, FatalRequestError) and "extra.nope" in str(bad.error)


def test_event_loop_stays_responsive_while_generating(gen: Generator) -> None:
    async def scenario() -> tuple[int, list[GenerationResult]]:
        ticks = 0
        task = asyncio.ensure_future(gen.generate([request(prompt="Once upon a time",
                                                           temperature=0, max_tokens=32)]))
        while not task.done():
            await asyncio.sleep(0.005)
            ticks += 1
        return ticks, await task

    ticks, (result,) = asyncio.run(scenario())
    assert texts(result)[0]
    assert ticks >= 5


def test_without_extra_buffer_types_or_prompt_cache_answers_the_same(
    gen: Generator, fresh_gen: Generator
) -> None:
    asks = [request(messages=QUESTION, temperature=0),
            request(prompt="The capital of France is", temperature=0)]
    assert [texts(r) for r in run(fresh_gen, *asks)] == [texts(r) for r in run(gen, *asks)]


def test_an_amx_build_loads_weights_without_extra_buffers_and_says_so(
    model_path: Path, gen: Generator, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    import llama_cpp

    from promptmill.generators.llamacpp_ import build_has_amx

    # The README's portable build (GGML_NATIVE=OFF) compiles no AMX kernels.
    info = llama_cpp.llama_print_system_info()
    assert b"AMX_INT8 = 1" not in info and build_has_amx() is False, info
    # What every weight load asks llama.cpp for (llama-cpp-python passes these params on).
    loads: list[bool] = []
    load = llama_cpp.llama_cpp.llama_model_load_from_file

    def recording_load(path: bytes, params: Any) -> Any:
        loads.append(bool(params.use_extra_bufts))
        return load(path, params)

    monkeypatch.setattr(llama_cpp.llama_cpp, "llama_model_load_from_file", recording_load)
    ask = request(messages=QUESTION, temperature=0)
    (expected,) = run(gen, ask)

    def load_and_answer(options: str) -> list[str]:
        generator = get_generator(f"llamacpp!{model_path},n_ctx=512{options}")
        asyncio.run(generator.start())
        try:
            (result,) = run(generator, ask)
        finally:
            asyncio.run(generator.close())
        return texts(result)

    caplog.set_level("WARNING", logger="promptmill")
    assert load_and_answer("") == texts(expected)
    assert loads == [True] and not caplog.records  # no AMX: repacked buffers are fine

    # A build that reports AMX kernels (a -march=native build on an AMX Xeon).
    monkeypatch.setattr(llama_cpp, "llama_print_system_info", lambda: info + b"AMX_INT8 = 1 | ")
    assert build_has_amx() is True
    assert load_and_answer("") == texts(expected)
    assert loads[1:] == [False]  # weights stay in the plain CPU buffer: AMX is never used
    (warning,) = [r.getMessage() for r in caplog.records]
    assert "built with AMX kernels" in warning and "-DGGML_NATIVE=OFF" in warning
    caplog.clear()
    # use_extra_bufts=true overrides the detection, without a warning.
    assert load_and_answer(",use_extra_bufts=true") == texts(expected)
    assert loads[2:] == [True] and not caplog.records
