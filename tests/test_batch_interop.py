"""The batch files promptmill writes, read by parsers no one here wrote.

Every line of batch input files made by a job (chat and text, with every sampling parameter,
k split over several requests, a system prompt, chat messages from the row) is checked with
the ``openai`` package's own typed request models: the line's envelope, its ``url`` among the
endpoints ``BatchCreateParams`` accepts, and its ``body`` validated as the SDK's
``CompletionCreateParamsNonStreaming`` (chat or text), with no field the SDK does not know.
Where the vLLM extra is installed, each line is also parsed by vLLM's own batch request model
(``vllm run-batch`` reads the same format). The test server's Batch API answers are checked
with the SDK's response models (``Batch``, ``FileObject``, ``ChatCompletion``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import typing
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import TypeAdapter

from promptmill.batch import BatchOptions, BatchRunner
from promptmill.batch_api import BatchAPI
from promptmill.generators import get_generator
from promptmill.job import Job, JobSpec
from promptmill.params import make_params
from promptmill.prompts.render import PromptSpec
from promptmill.store import JobStore
from promptmill.testing import TestServer

openai = pytest.importorskip("openai")  # the dev extra installs it

PARAMS = {"temperature": 0.7, "top_p": 0.9, "max_tokens": 64, "stop": ["###", "\n\n"],
          "seed": 7, "presence_penalty": 0.1, "frequency_penalty": 0.2, "logprobs": True,
          "top_logprobs": 3}


def rows() -> list[dict[str, Any]]:
    return [{"id": i, "question": f"Question {i}: what is {i} squared?",
             "messages": [{"role": "system", "content": "Be brief."},
                          {"role": "user", "content": f"Square {i}, with \u00e9l\u00e8ve"}]}
            for i in range(12)]


def input_lines(tmp_path: Path, server: TestServer, *, chat: bool, k: int,
                messages: bool = False) -> Iterator[dict[str, Any]]:
    """The lines of the batch input files a job writes (nothing is sent)."""
    folder = tmp_path / f"{'chat' if chat else 'text'}-{k}-{messages}"
    folder.mkdir()
    source = folder / "questions.jsonl"
    source.write_text("".join(json.dumps(row) + "\n" for row in rows()))
    prompts = PromptSpec.build(None if messages else "Q: {{ question }}", None,
                               "messages" if messages else None,
                               None if messages else "You answer maths.", chat)
    spec = JobSpec(input=source, output=folder / "answers.jsonl", prompts=prompts, k=k,
                   generator=get_generator(f"openai!gpt-4o-mini,api_base={server.url}"),
                   params=make_params(PARAMS), mode="batch")
    # Planned and written as a job would, without opening it: no key is needed, none is sent.
    job = Job(spec, JobStore(spec.store_path), spec.effective_params())
    try:
        job.store.bind_job(spec.fingerprint(""))
        job.plan()
        runner = BatchRunner(job, BatchOptions(max_requests=7), 8)
        runner.folder.mkdir()
        numbers = runner.form()
        assert len(numbers) >= 2  # split: every file is checked, not only the first
        for number in numbers:
            for raw in runner.input_path(number).read_text(encoding="utf-8").splitlines():
                yield json.loads(raw)
    finally:
        job.close()


def _consume(value: Any) -> Any:
    """The SDK's Iterable fields validate lazily: walk them so that every item is checked."""
    if isinstance(value, dict):
        return {key: _consume(item) for key, item in value.items()}
    if isinstance(value, (str, bytes)):
        return value
    if hasattr(value, "__iter__"):
        return [_consume(item) for item in value]
    return value


def sdk_check(line: dict[str, Any]) -> None:
    """One batch input line against the openai package's typed models."""
    from openai.types import batch_create_params, completion_create_params
    from openai.types.chat import completion_create_params as chat_params

    assert set(line) == {"custom_id", "method", "url", "body"}
    assert isinstance(line["custom_id"], str) and 0 < len(line["custom_id"]) <= 64
    assert line["method"] == "POST"
    endpoints = typing.get_args(typing.get_args(
        typing.get_type_hints(batch_create_params.BatchCreateParams,
                              include_extras=True)["endpoint"])[0])
    assert line["url"] in endpoints
    chat = line["url"] == "/v1/chat/completions"
    params = (chat_params.CompletionCreateParamsNonStreaming if chat
              else completion_create_params.CompletionCreateParamsNonStreaming)
    body = line["body"]
    known = params.__required_keys__ | params.__optional_keys__
    assert set(body) <= known, set(body) - known
    assert {"model", "messages" if chat else "prompt"} <= set(body)
    _consume(TypeAdapter(params).validate_python(body))


@pytest.mark.parametrize(("chat", "k", "messages"), [(True, 1, False), (True, 3, False),
                                                     (True, 200, False), (False, 2, False),
                                                     (True, 1, True)])
def test_every_input_line_is_a_valid_request_for_the_openai_sdk(
        tmp_path: Path, server: TestServer, chat: bool, k: int, messages: bool) -> None:
    lines = list(input_lines(tmp_path, server, chat=chat, k=k, messages=messages))
    assert len(lines) == 12 * (2 if k == 200 else 1)
    for line in lines:
        sdk_check(line)
    assert len({line["custom_id"] for line in lines}) == len(lines)


def test_the_sdk_check_catches_what_openai_would_refuse(
        tmp_path: Path, server: TestServer) -> None:
    good = next(input_lines(tmp_path, server, chat=True, k=1))
    bad_lines: list[Callable[[dict[str, Any]], None]] = [
        lambda line: line["body"].update(temperature="hot"),
        lambda line: line["body"]["messages"][0].update(role="robot"),
        lambda line: line["body"].update(max_tokns=5),
        lambda line: line.update(url="/v1/chat"),
        lambda line: line.pop("custom_id"),
    ]
    for spoil in bad_lines:
        line = json.loads(json.dumps(good))
        spoil(line)
        with pytest.raises(Exception):  # noqa: B017 - pydantic's or an assert, either refuses
            sdk_check(line)


@pytest.mark.vllm
def test_every_input_line_parses_as_a_vllm_batch_request(
        tmp_path: Path, server: TestServer) -> None:
    pytest.importorskip("vllm")
    import importlib

    # Where vLLM keeps its batch request model has moved between releases.
    for module in ("vllm.entrypoints.launchers.run_batch", "vllm.entrypoints.openai.run_batch",
                   "vllm.entrypoints.openai.protocol"):
        with contextlib.suppress(ImportError):
            model = getattr(importlib.import_module(module), "BatchRequestInput", None)
            if model is not None:
                break
    else:
        pytest.fail("vllm is installed but has no BatchRequestInput")
    # vLLM's run-batch takes the chat endpoint (its text completions are not batched).
    for k, messages in ((3, False), (1, True), (200, False)):
        for line in input_lines(tmp_path, server, chat=True, k=k, messages=messages):
            parsed = model.model_validate_json(json.dumps(line))
            assert parsed.custom_id == line["custom_id"] and parsed.url == line["url"]
            body = parsed.body
            assert body.model == "gpt-4o-mini" and body.n == line["body"]["n"]
            assert body.max_tokens == 64 and body.stop == ["###", "\n\n"]
            assert body.logprobs is True and body.top_logprobs == 3
            assert not (body.model_extra or {}), body.model_extra  # every field understood


def test_the_test_servers_batch_api_answers_in_the_sdks_shapes(
        tmp_path: Path, server: TestServer) -> None:
    from openai.types import Batch, FileDeleted, FileObject
    from openai.types.chat import ChatCompletion

    source = tmp_path / "in.jsonl"
    source.write_text("".join(json.dumps({
        "custom_id": f"r{i}", "method": "POST", "url": "/v1/chat/completions",
        "body": {"model": "test-model", "messages": [{"role": "user", "content": f"q{i}"}]}})
        + "\n" for i in range(5)))

    async def exchange() -> None:
        async with BatchAPI(server.url, None) as api:
            uploaded = FileObject.model_validate(await api.upload(source, "in.jsonl"))
            assert uploaded.purpose == "batch" and uploaded.bytes == source.stat().st_size
            batch = Batch.model_validate(await api.create_batch(uploaded.id,
                                                                "/v1/chat/completions"))
            assert batch.status == "validating" and batch.completion_window == "24h"
            for _ in range(500):
                batch = Batch.model_validate(await api.retrieve_batch(batch.id))
                if batch.status == "completed":
                    break
                await asyncio.sleep(0.01)
            assert batch.request_counts is not None and batch.request_counts.completed == 5
            assert batch.output_file_id and batch.completed_at and batch.in_progress_at
            FileObject.model_validate(await api.retrieve_file(batch.output_file_id))
            out = tmp_path / "out.jsonl"
            await api.download(batch.output_file_id, out)
            for raw in out.read_text().splitlines():
                line = json.loads(raw)
                assert set(line) == {"id", "custom_id", "response", "error"}
                ChatCompletion.model_validate(line["response"]["body"])
            page = await api.list_batches(limit=100)
            assert batch.id in [Batch.model_validate(b).id for b in page["data"]]
            FileDeleted.model_validate(await api.delete_file(uploaded.id))

    asyncio.run(exchange())
