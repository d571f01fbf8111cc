"""transformers! on a real (tiny, random-weight) Llama: batching, n, logprobs, LoRA, objects."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

import promptmill
from promptmill.errors import JobMismatchError
from promptmill.generators import from_obj, get_generator
from promptmill.generators.transformers_ import TransformersGenerator

pytestmark = pytest.mark.hf

GREEDY = {"temperature": 0, "max_tokens": 6}


def questions(count: int) -> list[dict[str, Any]]:
    # Lengths differ, so batches are padded (and sorted by length).
    return [{"id": i, "question": "Tell me " + "more " * (i % 5) + f"about {i}."}
            for i in range(count)]


def texts(rows: list[dict[str, Any]]) -> list[list[str]]:
    return [[r["text"] for r in row["responses"]] for row in rows]


def test_job_gives_k_responses_logprobs_and_usage(tiny_model: Path) -> None:
    rows = promptmill.run(questions(6), f"transformers!{tiny_model},batch_size=4", k=3,
                          params={**GREEDY, "logprobs": True, "top_logprobs": 2})
    assert [row["id"] for row in rows] == list(range(6))
    for row in rows:
        assert row["status"] == "done" and row["error"] is None
        assert len(row["responses"]) == 3
        first = row["responses"][0]
        assert set(first) == {"text", "finish_reason", "logprobs"}
        assert len(first["logprobs"]) == 6 and first["finish_reason"] == "length"
        assert all(len(entry["top_logprobs"]) == 2 and entry["logprob"] <= 0
                   for entry in first["logprobs"])
        # Greedy: the top alternative is the token chosen.
        assert all(entry["top_logprobs"][0]["token"] == entry["token"]
                   for entry in first["logprobs"])
        assert "".join(entry["token"] for entry in first["logprobs"]) == first["text"]
        assert row["usage"]["completion_tokens"] == 18 and row["usage"]["prompt_tokens"] > 0
        assert row["model"].startswith("transformers!")
    # n via num_return_sequences: greedy samples agree.
    assert all(len(set(answers)) == 1 for answers in texts(rows))


def test_batched_answers_equal_one_at_a_time(tiny_model: Path) -> None:
    batched = promptmill.run(questions(10), f"transformers!{tiny_model},batch_size=8",
                             params=GREEDY)
    single = promptmill.run(questions(10), f"transformers!{tiny_model},batch_size=1",
                            params=GREEDY)
    assert texts(batched) == texts(single)
    assert len({tuple(t) for t in texts(batched)}) > 1  # not one answer for every prompt


def test_lora_changes_greedy_answers_and_removing_it_restores_them(
    tiny_model: Path, tiny_adapter: Path
) -> None:
    model = f"transformers!{tiny_model},batch_size=4"
    base = texts(promptmill.run(questions(6), model, params=GREEDY))
    adapted = texts(promptmill.run(questions(6), f"{model},adapter={tiny_adapter}",
                                   params=GREEDY))
    again = texts(promptmill.run(questions(6), model, params=GREEDY))
    assert all(a != b for a, b in zip(adapted, base, strict=True))
    assert again == base
    # Several adapters in one job: each row answered by the one its field names.
    mixed_rows = [dict(row, adapter="tuned" if row["id"] % 2 else "")
                  for row in questions(6)]
    lora = json.dumps({"tuned": str(tiny_adapter)})
    mixed = texts(promptmill.run(mixed_rows, f"{model},adapter={lora}", params=GREEDY,
                                 adapter_field="adapter"))
    assert mixed == [adapted[i] if i % 2 else base[i] for i in range(6)]


def test_adapter_weights_are_part_of_the_fingerprint(
    tiny_model: Path, tiny_adapter: Path, tmp_path: Path
) -> None:
    adapter = shutil.copytree(tiny_adapter, tmp_path / "adapter")
    out = tmp_path / "answers.jsonl"
    model = f"transformers!{tiny_model},adapter={adapter}"
    promptmill.run(questions(2), model, params=GREEDY, output=out)
    weights = adapter / "adapter_model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 1  # retrained, same path
    weights.write_bytes(bytes(data))
    with pytest.raises(JobMismatchError, match="model files"):
        promptmill.run(questions(2), model, params=GREEDY, output=out)


def test_over_long_prompt_fails_its_row_not_the_job(tiny_model: Path) -> None:
    rows = [{"id": 0, "question": "short"}, {"id": 1, "question": "word " * 300}]
    model = f"transformers!{tiny_model},max_model_len=128"
    result = promptmill.run(rows, model, params=GREEDY)
    assert result[0]["status"] == "done"
    # Counted with the model's own tokenizer and chat template before anything runs: the
    # row fails unsent (no attempt), naming the budget and the fix.
    assert result[1]["status"] == "failed" and result[1]["attempts"] == 0
    assert "over the 122 of transformers!" in result[1]["error"]
    assert "128-token context less max_tokens=6" in result[1]["error"]
    # The engine told to truncate keeps the prompt's end itself.
    kept = promptmill.run(rows, f"{model},truncate=true", params=GREEDY)
    assert [row["status"] for row in kept] == ["done", "done"]
    assert kept[1]["usage"]["prompt_tokens"] == 122


def test_planning_counts_with_the_models_tokenizer_so_a_cut_row_fits_exactly(
    tiny_model: Path,
) -> None:
    # Digits: SmolLM2's tokenizer splits them one a token, tiktoken's in threes, so an
    # estimate would cut far too little (the engine would refuse the row) or far too much.
    rows = [{"id": 0, "question": "31415926535 " * 60}]
    model = f"transformers!{tiny_model},max_model_len=128"
    cut = promptmill.run(rows, model, params=GREEDY, truncate_field="question")
    assert cut[0]["status"] == "done", cut[0]["error"]
    # The engine's own count of the prompt it ran: within the budget, and at most a token
    # or two under it (the cut is the longest prefix that fits).
    assert 119 <= cut[0]["usage"]["prompt_tokens"] <= 122


def test_wrapped_model_object_and_load_unload(tiny_model: Path) -> None:
    import transformers

    model = transformers.AutoModelForCausalLM.from_pretrained(tiny_model)
    tokenizer = transformers.AutoTokenizer.from_pretrained(tiny_model)
    wrapped = from_obj(model, tokenizer, batch_size=4, **GREEDY)
    by_object = promptmill.run(questions(4), wrapped)
    by_identifier = promptmill.run(questions(4), f"transformers!{tiny_model}", params=GREEDY)
    assert texts(by_object) == texts(by_identifier)
    assert wrapped.loaded  # a job never frees the caller's model
    # The seed's spelling, and a one-off call on the caller's model (left loaded).
    seeds = TransformersGenerator.from_obj(model, tokenizer, **GREEDY)
    first = seeds.complete_sync("Tell me about 0.")
    assert first.text and first.usage is not None and first.usage.completion_tokens > 0
    assert seeds.complete_sync("Tell me about 0.").text == first.text  # greedy
    assert seeds.loaded

    generator = get_generator(f"transformers!{tiny_model}")
    generator.load()
    promptmill.run(questions(2), generator, params=GREEDY)
    assert generator.loaded  # loaded by the caller: it stays for the next job
    generator.unload()
    assert not generator.loaded
    promptmill.run(questions(2), generator, params=GREEDY)
    assert not generator.loaded  # loaded by the job: freed after it


def test_a_row_naming_an_unknown_adapter_is_refused_before_loading(
    tiny_model: Path, tiny_adapter: Path, tmp_path: Path
) -> None:
    from promptmill.errors import InputError

    source = tmp_path / "rows.jsonl"
    source.write_text('{"question": "a", "ad": "tuned"}\n{"question": "b", "ad": "tunde"}\n')
    lora = json.dumps({"tuned": str(tiny_adapter)})
    expected = r"rows.jsonl:2: field 'ad' names adapter 'tunde'.*known are tuned"
    with pytest.raises(InputError, match=expected):
        promptmill.run(source, f"transformers!{tiny_model},adapter={lora}",
                       adapter_field="ad")


def test_a_model_changed_in_memory_is_not_answered_from_the_cache(tiny_model: Path) -> None:
    """A wrapped model's weights live in memory, where a notebook trains them between jobs
    under the same name: the cache (on by default at temperature 0) stays out of its way
    unless asked."""
    import torch
    import transformers

    model = transformers.AutoModelForCausalLM.from_pretrained(tiny_model)
    tokenizer = transformers.AutoTokenizer.from_pretrained(tiny_model)
    before = promptmill.run(questions(4), from_obj(model, tokenizer, **GREEDY))
    with torch.no_grad():  # "a training step": another model under the same name
        torch.manual_seed(0)
        for weight in model.parameters():
            weight.add_(torch.randn_like(weight) * 0.5)
    after = promptmill.run(questions(4), from_obj(model, tokenizer, **GREEDY))
    assert not any(r.get("cached") for row in after for r in row["responses"])
    assert texts(after) != texts(before)
    # Asked for, the cache answers the wrapped model by its name.
    asked = promptmill.run(questions(4), from_obj(model, tokenizer, **GREEDY), cache=True)
    again = promptmill.run(questions(4), from_obj(model, tokenizer, **GREEDY), cache=True)
    assert all(r.get("cached") for row in again for r in row["responses"])
    assert texts(again) == texts(asked) == texts(after)
