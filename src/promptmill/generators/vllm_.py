"""vLLM's offline engine in this process (``vllm!MODEL,...``): its own scheduler batches.

Many requests reach the engine at once (``max_batch`` per call, two calls in flight), so vLLM
schedules them together as ``LLM.generate`` would; the engine is stepped on one thread of
ours, and each request's result is handed back the moment vLLM finishes it, so the job
records it while the others run (a kill loses only the unfinished ones).

Chat requests go through the tokenizer's chat template, rendered and tokenized as vLLM's
OpenAI server does (no special tokens added to the rendered text), so a greedy answer here
equals the served model's. vLLM's own ``SamplingParams.max_tokens`` default (16) is never
used: an unset ``max_tokens`` means up to the context length, as in OpenAI's API.

The engine spawns processes: a script that builds one must run it under
``if __name__ == "__main__":`` (the ``promptmill`` command does).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import json
import logging
import os
import queue
import threading
from collections import deque
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from promptmill.errors import FatalRequestError, JobFatalError, ParamError, UsageError
from promptmill.generators.base import (
    GenerationRequest,
    GenerationResult,
    Generator,
    Response,
    Usage,
)
from promptmill.generators.local import (
    LocalEngine,
    check_adapters,
    extra_problem,
    free_accelerator_memory,
    import_torch_stack,
    require_module,
    token_entry,
    wrap_options,
)
from promptmill.params import FIELDS, GenerateParams
from promptmill.structured import schema_of

log = logging.getLogger("promptmill")

# Identifier options that configure the engine (passed to vllm.LLM) and their types.
ENGINE_OPTIONS: dict[str, type | tuple[type, ...]] = {
    "max_model_len": int,
    "gpu_memory_utilization": (int, float),
    "tensor_parallel_size": int,
    # "mp" or "ray": how vLLM runs its tensor-parallel workers (--ray sets "mp": inside a Ray
    # replica, which holds its GPUs itself).
    "distributed_executor_backend": str,
    "dtype": str,
    "enforce_eager": bool,
    "quantization": str,
    "max_lora_rank": int,
    "max_loras": int,
    "max_num_seqs": int,
    "trust_remote_code": bool,
    "tokenizer": str,
    "revision": str,
    "seed": int,
}
# Options promptmill reads itself.
_OWN_OPTIONS: dict[str, type | tuple[type, ...]] = {
    "lora": (str, dict),
    "mix_adapters": bool,
    "truncate": bool,
    "verbose": bool,
}
# vLLM sampling knobs accepted as extra.NAME.
EXTRA_SAMPLING: dict[str, type | tuple[type, ...]] = {
    "top_k": int,
    "min_p": (int, float),
    "repetition_penalty": (int, float),
    "min_tokens": int,
    "ignore_eos": bool,
    "skip_special_tokens": bool,
    "include_stop_str_in_output": bool,
    "stop_token_ids": list,
    "bad_words": list,
}


class VLLMGenerator(LocalEngine):
    """A Hugging Face model (folder or hub name) run by vLLM in this process."""

    provider = "vllm"
    supports_prompt_logprobs = True
    supported_params = FIELDS
    config_fields = frozenset(ENGINE_OPTIONS) | frozenset(_OWN_OPTIONS)
    option_types = {**ENGINE_OPTIONS, **_OWN_OPTIONS}
    adapter_option = "lora"
    # Measured (benchmarks/local_engines.py, 512 prompts): the same 512 handed over as two
    # calls of 256 ran at 0.85-0.88 of one LLM.generate; as one call, at 0.97-1.02.
    max_batch = 1024
    concurrent_batches = 2

    def __init__(self, model: str, *, llm: Any = None, **kwargs: Any) -> None:
        super().__init__(model, **kwargs)
        self._llm: Any = llm  # the vllm.LLM; given (wrapped) or built by load()
        self._wrapped = llm is not None  # the caller's object: a job never frees it
        self._driver: _Driver | None = None

    @classmethod
    def wrap(cls, llm: Any, **options: Any) -> VLLMGenerator:
        """A generator answering with an ``vllm.LLM`` the caller already built."""
        model = str(llm.llm_engine.model_config.model)
        params, config = wrap_options(options)
        return cls(model, llm=llm, params=params, **config)

    # rigging's name for the same (VLLMGenerator.from_obj(llm), TransformersGenerator.from_obj(
    # model, tokenizer)): the seed's code runs as written.
    from_obj = wrap

    def with_params(self, params: GenerateParams) -> Generator:
        """The same engine (loaded or wrapped) with ``params`` merged over its own."""
        clone = super().with_params(params)
        assert isinstance(clone, VLLMGenerator)
        clone._llm, clone._wrapped = self._llm, self._wrapped
        return clone

    def params_problem(self, params: GenerateParams) -> str | None:
        """Why the engine cannot take ``params`` (an extra it has no sampler for), or None."""
        return extra_problem(self.provider, params, EXTRA_SAMPLING)

    def check_ready(self) -> None:
        """Refuse bad adapters and option combinations before the job starts."""
        super().check_ready()
        if not self._wrapped:
            require_module(self.provider, "vllm", "vllm")
        check_adapters(self.provider, "lora", self._adapters)
        if self._wrapped and self._adapters and not self._llm_has_lora():
            raise UsageError("vllm!: lora= needs an LLM built with enable_lora=True")
        problem = extra_problem(self.provider, self.params, EXTRA_SAMPLING)
        if problem:
            raise ParamError(problem)
        if self._adapters and self.params.prompt_logprobs is not None:
            # vLLM 0.32 crashes its engine computing prompt logprobs with LoRA enabled
            # (a shape mismatch in the LoRA logits processor): refuse rather than die mid-job.
            raise ParamError(
                "vllm!: prompt_logprobs cannot be combined with lora= (vLLM's engine fails on "
                "it): run the prompt logprobs job without the adapter"
            )

    def _llm_has_lora(self) -> bool:
        return bool(getattr(self._llm.llm_engine.vllm_config, "lora_config", None))

    # -- lifecycle -----------------------------------------------------------------------

    @property
    def loaded(self) -> bool:
        """Whether the engine is in memory."""
        return self._llm is not None

    def engine_tokenizer(self) -> Any:
        """The loaded engine's tokenizer, or None."""
        return self._llm.get_tokenizer() if self._llm is not None else None

    def load(self) -> None:
        """Build the engine now (blocking; a minute or more), if it is not loaded yet."""
        if self._llm is not None:
            return
        self.check_ready()
        # vLLM logs every step of loading at INFO; the job's own logging decides ours.
        if not self.config.get("verbose"):
            os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")
        vllm = import_torch_stack(self.provider, "vllm", "vllm")
        token = self.api_key()  # a private model: vLLM reads HF_TOKEN (it may be in .env)
        if token:
            os.environ.setdefault("HF_TOKEN", token)
        options = {k: v for k, v in self.config.items() if k in ENGINE_OPTIONS and v is not None}
        if self._adapters:
            options["enable_lora"] = True
            options.setdefault("max_loras", max(1, len(self._adapters)))
        self._llm = vllm.LLM(model=self.model, disable_log_stats=True, **options)

    def unload(self) -> None:
        """Shut the engine down and free its memory (also a wrapped LLM: it is unusable then)."""
        self._stop_driver()
        llm, self._llm = self._llm, None
        if llm is None:
            return
        with contextlib.suppress(Exception):  # already dead engines shut down noisily
            llm.llm_engine.engine_core.shutdown()
        del llm
        free_accelerator_memory()

    async def close(self) -> None:
        """Stop stepping the engine; free it if this job loaded it."""
        self._stop_driver()
        await super().close()

    def _stop_driver(self) -> None:
        if self._driver is not None:
            self._driver.stop()
            self._driver = None

    # -- generation ----------------------------------------------------------------------

    async def stream(
        self, requests: Sequence[GenerationRequest]
    ) -> AsyncIterator[GenerationResult]:
        """Hand the batch to the engine; yield each result when vLLM finishes it."""
        if self._llm is None:
            raise RuntimeError("vllm! generator not loaded: call load() or start() first")
        if self._driver is None:
            self._driver = _Driver(self._llm, bool(self.config.get("mix_adapters")))
        call = _Call(asyncio.get_running_loop(), asyncio.Queue())
        rejected = []
        for request in requests:
            try:
                call.items.append(self._engine_request(request))
            except FatalRequestError as error:
                rejected.append(GenerationResult(request.request_id, error=error))
        for result in rejected:
            yield result
        if not call.items:
            return
        self._driver.submit(call)
        for _ in range(len(call.items)):
            outcome = await call.results.get()
            if isinstance(outcome, BaseException):
                raise outcome
            yield outcome

    def _engine_request(self, request: GenerationRequest) -> _EngineRequest:
        """What the engine thread adds: prompt, sampling params, adapter (or a row error)."""
        params = self.params.merge(request.params)
        problem = extra_problem(self.provider, params, EXTRA_SAMPLING)
        if problem:
            raise FatalRequestError(problem)
        tokenizer = self._llm.get_tokenizer()
        if request.messages is not None:
            if not getattr(tokenizer, "chat_template", None):
                raise FatalRequestError(
                    f"vllm!{self.model} has no chat template: send text prompts (--text)")
            try:
                text = tokenizer.apply_chat_template(
                    request.messages, tokenize=False, add_generation_prompt=True)
            except Exception as exc:  # a template raising on these messages
                raise FatalRequestError(f"the chat template failed on this request: {exc}"
                                        ) from None
            special = False
        elif request.prompt is not None:
            text, special = request.prompt, True
        else:
            raise FatalRequestError("a request needs exactly one of messages or prompt")
        prompt: dict[str, Any] = {"prompt": text}
        if self.config.get("truncate"):
            prompt = {"prompt_token_ids": self._truncated(tokenizer, text, special, params)}
        try:
            sampling = _sampling_params(params, self._driver_output_kind())
        except (ValueError, TypeError) as exc:
            raise FatalRequestError(f"vLLM refused these parameters: {exc}") from None
        return _EngineRequest(request, prompt, {"add_special_tokens": special},
                              params, self._lora_request(request), sampling)

    @staticmethod
    def _driver_output_kind() -> Any:
        from vllm.sampling_params import RequestOutputKind

        return RequestOutputKind.FINAL_ONLY  # one output per request, when it finishes

    def _truncated(self, tokenizer: Any, text: str, special: bool,
                   params: GenerateParams) -> list[int]:
        """The prompt's last tokens that leave room for max_tokens in the context."""
        ids: list[int] = tokenizer.encode(text, add_special_tokens=special)
        room = self._llm.llm_engine.model_config.max_model_len - (params.max_tokens or 1)
        return ids[-max(1, room):]

    def _lora_request(self, request: GenerationRequest) -> Any:
        name = self.adapter_for(request)
        if not name:
            return None
        from vllm.lora.request import LoRARequest

        index = sorted(self._adapters).index(name) + 1  # vLLM's ids start at 1
        return LoRARequest(name, index, str(self._adapters[name]))


@dataclass(slots=True)
class _EngineRequest:
    request: GenerationRequest
    prompt: dict[str, Any]
    tokenization: dict[str, Any]
    params: GenerateParams
    lora: Any
    sampling: Any  # vllm.SamplingParams


@dataclass
class _Call:
    """One stream() call: its loop, where its results go, and its requests."""

    loop: asyncio.AbstractEventLoop
    results: asyncio.Queue[GenerationResult | BaseException]
    items: list[_EngineRequest] = field(default_factory=list)

    def deliver(self, outcome: GenerationResult | BaseException) -> None:
        """Hand a result (or the engine's death) to the waiting coroutine, from any thread."""
        with contextlib.suppress(RuntimeError):  # its loop closed: the job is gone
            self.loop.call_soon_threadsafe(self.results.put_nowait, outcome)


class _Driver:
    """The thread that adds requests to the engine and steps it until they finish.

    Requests with different adapters (or none) are not run at once unless ``mix_adapters``:
    vLLM 0.32's CPU build applies a batch's LoRA adapter to the requests without one in the
    same batch (measured: their greedy answers become the adapter's). One adapter at a time,
    in the order the requests came, gives every request its own answer.
    """

    def __init__(self, llm: Any, mix_adapters: bool = False) -> None:
        self._llm = llm  # the engine's owner
        self._engine = llm.llm_engine  # stepped here only
        self._mix = mix_adapters  # let requests of different adapters share the engine
        self._queued: deque[tuple[_Call, _EngineRequest]] = deque()  # not yet in the engine
        self._adapter: str | None = None  # the adapter of the requests running ("": none)
        self._inbox: queue.SimpleQueue[_Call | None] = queue.SimpleQueue()  # None: stop
        self._running: dict[str, tuple[_Call, _EngineRequest]] = {}  # engine id -> request
        self._ids = itertools.count()  # engine request ids: unique for the engine's life
        self._thread = threading.Thread(target=self._run, name="promptmill-vllm", daemon=True)
        self._thread.start()

    def submit(self, call: _Call) -> None:
        """Queue a call's requests for the engine."""
        self._inbox.put(call)

    def stop(self) -> None:
        """End the thread after the step in progress; unfinished requests are aborted."""
        self._inbox.put(None)
        self._thread.join(timeout=60)

    def _run(self) -> None:
        try:
            self._loop()
        except BaseException as exc:  # a bug here must not leave the job waiting forever
            self._fail_running(exc)
            raise

    def _loop(self) -> None:
        engine = self._engine
        while True:
            while not self._running and self._queued:
                self._admit()  # the next adapter's turn (or every request was refused)
            # Block for work when the engine is idle; otherwise take what came in and step.
            calls = [self._inbox.get()] if not self._running else []
            with contextlib.suppress(queue.Empty):
                while True:
                    calls.append(self._inbox.get_nowait())
            if None in calls:
                self._abort_running()
                return
            for call in calls:
                assert call is not None
                self._queued.extend((call, item) for item in call.items)
            self._admit()
            if not self._running:
                continue
            # An exception (EngineDeadError, out of memory) fails every running request.
            for output in engine.step():
                if output.finished:
                    call, item = self._running.pop(output.request_id)
                    call.deliver(_result(item, output))

    def _admit(self) -> None:
        """Add the queued requests the engine may run now (see the class docstring)."""
        if not self._running:
            self._adapter = None
        kept: deque[tuple[_Call, _EngineRequest]] = deque()
        for call, item in self._queued:
            name = item.lora.lora_name if item.lora is not None else ""
            if self._adapter is None:
                self._adapter = name
            if self._mix or name == self._adapter:
                self._add(call, item)
            else:
                kept.append((call, item))
        self._queued = kept

    def _add(self, call: _Call, item: _EngineRequest) -> None:
        engine_id = f"pm{next(self._ids)}"
        try:
            self._engine.add_request(
                engine_id, item.prompt, item.sampling,
                lora_request=item.lora, tokenization_kwargs=item.tokenization)
        except Exception as exc:  # VLLMValidationError: too long a prompt, a bad parameter
            call.deliver(GenerationResult(item.request.request_id, error=FatalRequestError(
                f"vLLM refused this request: {exc} (raise max_model_len=, shorten the "
                "prompt, or pass truncate=true to keep its end)")))
            return
        self._running[engine_id] = (call, item)

    def _abort_running(self) -> None:
        if self._running:
            with contextlib.suppress(Exception):
                self._engine.abort_request(list(self._running))
            self._running.clear()
        self._queued.clear()

    def _fail_running(self, exc: BaseException) -> None:
        error = JobFatalError(f"the vLLM engine failed: {type(exc).__name__}: {exc}"[:600])
        for call, _ in [*self._running.values(), *self._queued]:
            call.deliver(error)
        self._running.clear()
        self._queued.clear()
        while True:  # calls that arrived meanwhile fail too
            try:
                pending = self._inbox.get_nowait()
            except queue.Empty:
                return
            if pending is not None:
                for _ in pending.items:
                    pending.deliver(error)


def _sampling_params(params: GenerateParams, output_kind: Any) -> Any:
    """vLLM's SamplingParams with OpenAI's meaning of each of ours."""
    from vllm import SamplingParams

    top = params.top_logprobs or 0
    temperature = 1.0 if params.temperature is None else params.temperature
    structured = None
    schema = schema_of(params.response_format)
    if schema is not None:  # vLLM's structured outputs, as a grammar xgrammar runs
        from vllm.sampling_params import StructuredOutputsParams

        structured = StructuredOutputsParams(
            grammar=_json_grammar(json.dumps(schema or {"type": "object"}, sort_keys=True)))
    return SamplingParams(
        # vLLM refuses n > 1 when greedy: one answer, repeated n times by _result.
        n=1 if temperature == 0 else params.n or 1,
        temperature=temperature,
        top_p=1.0 if params.top_p is None else params.top_p,
        max_tokens=params.max_tokens,  # None: up to the context length (vLLM's default is 16)
        stop=list(params.stop or []),
        seed=params.seed,
        presence_penalty=params.presence_penalty or 0.0,
        frequency_penalty=params.frequency_penalty or 0.0,
        logprobs=top if params.logprobs else None,
        prompt_logprobs=params.prompt_logprobs,
        output_kind=output_kind,
        structured_outputs=structured,
        **params.extra,
    )


@functools.lru_cache(maxsize=32)
def _json_grammar(schema: str) -> str:
    """The grammar (xgrammar's EBNF) of JSON matching ``schema``, without free whitespace.

    A grammar rather than vLLM's ``json=``: vLLM reads "no free whitespace" from the engine's
    config only, and a weak model pads JSON with whitespace until max_tokens; a grammar
    says it per request, also on an engine the caller built.
    """
    import xgrammar

    return str(xgrammar.Grammar.from_json_schema(schema, any_whitespace=False))


def _result(item: _EngineRequest, output: Any) -> GenerationResult:
    """Our result for a finished vLLM RequestOutput."""
    params = item.params
    prompt_logprobs = None
    if params.prompt_logprobs is not None and output.prompt_logprobs is not None:
        prompt_logprobs = [
            None if entry is None else _entry(token, entry, params.prompt_logprobs)
            for token, entry in zip(output.prompt_token_ids, output.prompt_logprobs, strict=False)
        ]
    responses = []
    completion_tokens = 0
    for completion in sorted(output.outputs, key=lambda c: c.index):
        completion_tokens += len(completion.token_ids)
        logprobs = None
        if params.logprobs and completion.logprobs is not None:
            logprobs = [
                _entry(token, entry, params.top_logprobs or 0)
                for token, entry in zip(completion.token_ids, completion.logprobs, strict=False)
            ]
        responses.append(Response(completion.text, completion.finish_reason, logprobs,
                                  prompt_logprobs))
    wanted = params.n or 1
    if len(responses) < wanted:  # greedy: the one answer is every sample's answer
        completion_tokens *= wanted
        responses = [responses[0]] * wanted
    usage = Usage(len(output.prompt_token_ids or []), completion_tokens)
    return GenerationResult(item.request.request_id, responses, usage)


def _entry(token_id: int, alternatives: dict[int, Any], top: int) -> dict[str, Any]:
    """One position's logprobs: the chosen token and the ``top`` most likely ones."""
    chosen = alternatives[token_id]
    best = sorted((lp for lp in alternatives.values() if lp.rank <= top), key=lambda lp: lp.rank)
    return token_entry(chosen.decoded_token or "", chosen.logprob,
                       [token_entry(lp.decoded_token or "", lp.logprob) for lp in best])


__all__ = ["VLLMGenerator"]
