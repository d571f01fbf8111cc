"""llama.cpp in this process through llama-cpp-python: any GGUF file (``llamacpp!/path.gguf``).

The model loads once per job, in ``start()``; every llama.cpp call runs on the generator's one
worker thread, so calls never overlap (a ``Llama`` is not thread-safe) and the event loop stays
responsive. One thread rather than ``asyncio.to_thread``'s pool also keeps llama.cpp's OpenMP
team, which belongs to the calling thread, from being created again for each new thread. Sampling
follows the OpenAI meaning of each parameter (temperature 1 and top_p 1 when unset, no top-k,
no min-p); llama.cpp's own samplers are reachable as ``extra.top_k=40`` and the like.

Logprobs are read from the logits llama.cpp computes anyway for each sampled position, so a job
that wants them needs no ``logits_all`` model (n_ctx x vocab floats kept for every position)
and costs about a millisecond per token (top 5), where llama-cpp-python's own logprobs sort the
whole vocabulary in Python for every token (about 50 ms per token for a 49k vocabulary).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import re
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import llama_cpp  # a missing module becomes "install promptmill[local]" in the registry
import numpy as np
from llama_cpp.llama_grammar import JSON_GBNF, LlamaGrammar

from promptmill.errors import FatalRequestError, GenerationError, ParamError, UsageError
from promptmill.generators import embedded
from promptmill.generators.base import (
    GenerationRequest,
    GenerationResult,
    Generator,
    Response,
    Usage,
)
from promptmill.generators.local import check_config, extra_problem, files_stamp
from promptmill.params import GenerateParams
from promptmill.prompts.formats import PLAIN, ChatFormat, detect_format, get_format, is_format_name
from promptmill.structured import GrammarCache

log = logging.getLogger("promptmill")

DEFAULT_N_CTX = 2048
GGUF_MAGIC = b"GGUF"
# llama.cpp reads this seed as "pick one at random": never hand it over.
_RANDOM_SEED = 0xFFFFFFFF
# Backend-specific sampling knobs accepted as extra.NAME, and the type each must have.
EXTRA_SAMPLING: dict[str, type | tuple[type, ...]] = {
    "top_k": int,
    "min_p": (int, float),
    "typical_p": (int, float),
    "repeat_penalty": (int, float),
    "tfs_z": (int, float),
    "mirostat_mode": int,
    "mirostat_tau": (int, float),
    "mirostat_eta": (int, float),
    "logit_bias": dict,
}
# Identifier options that configure the model rather than sampling, and their types.
_CONFIG_TYPES: dict[str, type | tuple[type, ...]] = {
    "n_ctx": int,
    "n_threads": int,
    "n_threads_batch": int,
    "n_batch": int,
    "n_ubatch": int,
    "n_gpu_layers": int,
    "chat_format": str,
    "use_extra_bufts": bool,
    "cache_prompt": bool,
    "verbose": bool,
}
T = TypeVar("T")
_CONTEXT_OVERFLOW = re.compile(r"Requested tokens \((\d+)\) exceed context window of (\d+)")


def build_has_amx() -> bool:
    """Whether the llama.cpp library loaded here was compiled with AMX matmul kernels.

    A ``-march=native`` build (llama-cpp-python's default) on an Intel Xeon with AMX compiles
    them, repacks Q4_0/Q4_1/Q8_0/K-quant weights for them and runs them for every matmul of
    more than one row, i.e. batched prompt evaluation; that path segfaults in
    ``ggml_backend_amx_mul_mat`` (llama.cpp issue 20824, unfixed). docs/local.md has more.
    """
    return b"AMX_INT8 = 1" in llama_cpp.llama_print_system_info()


@contextlib.contextmanager
def _extra_buffer_types(enabled: bool) -> Iterator[None]:
    """Load models with llama.cpp's extra (repacking, AMX) weight buffers on or off.

    ``Llama()`` takes no such argument: it starts from ``llama_model_default_params()``,
    so that is what changes, for the duration of one load (on the worker thread).
    """
    if enabled:
        yield
        return
    module: Any = llama_cpp.llama_cpp
    original = module.llama_model_default_params

    def without_extra_buffers() -> Any:
        params = original()
        params.use_extra_bufts = False
        return params

    module.llama_model_default_params = without_extra_buffers
    try:
        yield
    finally:
        module.llama_model_default_params = original


def default_threads() -> int:
    """The cores this process may run on (llama-cpp-python's own default is half of them)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


class LlamaCppGenerator(Generator):
    """A GGUF model run by llama.cpp in this process; chat through the file's own template."""

    provider = "llamacpp"
    supports_n = True
    supports_logprobs = True
    is_local = True
    config_fields = frozenset(_CONFIG_TYPES)
    # Structured output: a grammar llama.cpp samples under, made from the JSON Schema.
    supported_params = Generator.supported_params | {"response_format"}

    def __init__(self, model: str, **kwargs: Any) -> None:
        super().__init__(model, **kwargs)
        check_config(self.provider, self.config, _CONFIG_TYPES)
        for name, value in self.config.items():
            expected = _CONFIG_TYPES[name]
            # n_ctx=0 is the model's trained context; n_gpu_layers=-1 is every layer.
            lowest = {"n_ctx": 0, "n_gpu_layers": -1}.get(name, 1)
            if expected is int and isinstance(value, int) and value < lowest:
                raise ParamError(f"llamacpp! option {name}={value} must be at least {lowest}")
        self._llm: llama_cpp.Llama | None = None  # loaded in start(), freed in close()
        self._vocab: llama_cpp.Llama | None = None  # tokenizer and metadata only, for planning
        self._template: Any = None  # the GGUF's chat template, compiled once for counting
        self._recorder: _LogprobRecorder | None = None  # hooked into _llm's sampling
        self._worker: ThreadPoolExecutor | None = None  # the one thread llama.cpp runs on
        self._kept = False  # load() was called: jobs leave the model loaded until unload()
        self._grammars = GrammarCache(_json_grammar)  # llama.cpp grammars, per schema

    # -- lifecycle -----------------------------------------------------------------------

    @property
    def model_path(self) -> Path:
        """The GGUF file, ``~`` expanded; ``smollm2`` is the embedded model's file."""
        if self.model == embedded.EMBEDDED_NAME:
            return embedded.embedded_model_path()
        return Path(self.model).expanduser()

    def weights_stamp(self) -> dict[str, Any] | None:
        """The GGUF file as it stands on disk (see ``files_stamp``)."""
        return files_stamp(self.model_path)

    def _vocabulary(self) -> llama_cpp.Llama:
        """The model's tokenizer and metadata (no weights), loaded once, in this thread."""
        if self._vocab is None:
            self.check_ready()
            from llama_cpp._utils import suppress_stdout_stderr

            # llama.cpp warns on stderr that a vocabulary-only context has no trained length.
            with suppress_stdout_stderr(disable=bool(self.config.get("verbose", False))):
                self._vocab = llama_cpp.Llama(str(self.model_path), vocab_only=True,
                                              verbose=False)
        return self._vocab

    def _llama_cpp_format(self) -> str | None:
        """A ``chat_format=`` that only llama-cpp-python knows (it renders those chats)."""
        setting = self.config.get("chat_format")
        if setting is None or setting == "auto" or is_format_name(setting):
            return None
        return str(setting)

    def chat_format(self) -> ChatFormat | None:
        """``chat_format=`` if set; else None where the GGUF has its own template (it wins),
        else the format the file name implies, else plain text (a base model)."""
        setting = self.config.get("chat_format")
        if setting is not None and setting != "auto":
            return None if self._llama_cpp_format() else get_format(setting)
        if setting is None and self._vocabulary().metadata.get("tokenizer.chat_template"):
            return None
        return detect_format(self.model_path.name) or PLAIN

    def context_length(self) -> int:
        """The context the model is run with: n_ctx (0: the GGUF's trained context)."""
        n_ctx = int(self.config.get("n_ctx", DEFAULT_N_CTX))
        if n_ctx:
            return n_ctx
        metadata = self._vocabulary().metadata
        trained = next((v for k, v in metadata.items() if k.endswith(".context_length")), None)
        return int(trained) if trained else DEFAULT_N_CTX

    def count_prompt_tokens(self, request: GenerationRequest) -> int:
        """The prompt's tokens as llama.cpp will see them (the GGUF's template for chats)."""
        vocab = self._vocabulary()
        if request.prompt is not None:
            text, add_bos = request.prompt, True
        else:
            template = vocab.metadata.get("tokenizer.chat_template")
            if not template or self._llama_cpp_format():
                return super().count_prompt_tokens(request)
            if self._template is None:
                from llama_cpp.llama_chat_format import Jinja2ChatFormatter

                def piece(token: int) -> str:
                    return "" if token < 0 else vocab.detokenize([token], special=True).decode(
                        "utf-8", errors="replace")

                self._template = Jinja2ChatFormatter(
                    template, eos_token=piece(vocab.token_eos()), bos_token=piece(vocab.token_bos())
                )
            result = self._template(messages=request.messages)
            # As llama-cpp-python does: a template that writes the BOS text gets no second one.
            text, add_bos = result.prompt, not result.added_special
        return len(vocab.tokenize(text.encode("utf-8"), add_bos=add_bos, special=True))

    def check_ready(self) -> None:
        """Refuse a missing or non-GGUF model file, or a bad extra.*, before the job starts."""
        super().check_ready()
        path = self.model_path
        if not path.is_file():
            what = "is a directory, not a file" if path.is_dir() else "does not exist"
            raise UsageError(
                f"llamacpp! model file {path} {what}: pass the path of a .gguf file, "
                "as in llamacpp!/path/to/model.gguf"
            )
        with path.open("rb") as file:
            if file.read(4) != GGUF_MAGIC:
                raise UsageError(
                    f"llamacpp! model file {path} is not a GGUF file: llama.cpp reads only "
                    "GGUF (convert others with llama.cpp's convert_hf_to_gguf.py)"
                )
        problem = _extra_problem(self.params)
        if problem:
            raise ParamError(problem)
        named = self._llama_cpp_format()
        if named is not None:
            registry: Any = llama_cpp.llama_chat_format.LlamaChatCompletionHandlerRegistry
            try:
                registry().get_chat_completion_handler_by_name(named)
            except Exception:  # llama-cpp-python's own NotFound exception
                raise UsageError(
                    f"llamacpp! chat_format={named!r} is neither a promptmill format "
                    "(`promptmill formats list`) nor one llama-cpp-python knows"
                ) from None

    async def start(self) -> None:
        """Load the model, once for the job."""
        self.check_ready()
        await self._on_worker(self._loaded)

    async def close(self) -> None:
        """Free the model, after the call in flight (if any) has finished, unless
        :meth:`load` asked to keep it."""
        if self._worker is None or self._kept:
            return
        await self._on_worker(self._free)
        self._worker.shutdown(wait=False)
        self._worker = None

    @property
    def loaded(self) -> bool:
        """Whether the model is in memory."""
        return self._llm is not None

    def load(self) -> None:
        """Load the model now and keep it across jobs and one-off calls until :meth:`unload`."""
        if self._worker is None:
            self._worker = ThreadPoolExecutor(1, thread_name_prefix="promptmill-llamacpp")
        self._worker.submit(self._loaded).result()
        self._kept = True

    def unload(self) -> None:
        """Free the model :meth:`load` kept."""
        self._kept = False
        if self._worker is not None:
            self._worker.submit(self._free).result()
            self._worker.shutdown(wait=False)
            self._worker = None

    async def _on_worker(self, function: Callable[..., T], *args: Any) -> T:
        # A task cancelled while waiting here leaves its call running; the next call queues
        # behind it on the same thread, so two calls still never touch the model at once.
        if self._worker is None:
            self._worker = ThreadPoolExecutor(1, thread_name_prefix="promptmill-llamacpp")
        return await asyncio.get_running_loop().run_in_executor(self._worker, function, *args)

    def _free(self) -> None:
        if self._llm is not None:
            self._llm.close()
            self._llm = self._recorder = None

    def _loaded(self) -> llama_cpp.Llama:
        """The model, loaded on first use; runs on the worker thread."""
        if self._llm is not None:
            return self._llm
        self.check_ready()
        config = self.config
        threads = config.get("n_threads") or default_threads()
        # Weights repacked for AMX crash batched prompt evaluation (see build_has_amx): with
        # such a build, keep every weight in the plain CPU buffer unless told otherwise.
        extra_bufts = config.get("use_extra_bufts", not build_has_amx())
        if "use_extra_bufts" not in config and not extra_bufts:
            log.warning(
                "llamacpp!: this llama-cpp-python was built with AMX kernels, which crash on "
                "batched prompts: they are turned off (reinstall it with "
                'CMAKE_ARGS="-DGGML_NATIVE=OFF" for a build without them; docs/local.md)'
            )
        # With verbose off, llama-cpp-python points fds 1 and 2 at /dev/null while it loads
        # (process-wide): loading in start(), before the job prints anything, keeps that safe.
        with _extra_buffer_types(extra_bufts):
            llm = llama_cpp.Llama(
                model_path=str(self.model_path),
                n_ctx=config.get("n_ctx", DEFAULT_N_CTX),
                n_batch=config.get("n_batch", 512),
                n_ubatch=config.get("n_ubatch", 512),
                n_threads=threads,
                n_threads_batch=config.get("n_threads_batch") or threads,
                n_gpu_layers=config.get("n_gpu_layers", 0),
                # None: the chat template stored in the GGUF file (tokenizer.chat_template);
                # promptmill's own formats arrive as text prompts, already rendered.
                chat_format=self._llama_cpp_format(),
                verbose=config.get("verbose", False),
            )
        self._recorder = _LogprobRecorder(llm)
        _cap_prompt_reuse(llm)
        self._llm = llm
        return llm

    @property
    def n_ctx(self) -> int:
        """The context window the loaded model runs with (the configured one before start)."""
        if self._llm is not None:
            return int(self._llm.n_ctx())
        return int(self.config.get("n_ctx", DEFAULT_N_CTX))

    def params_problem(self, params: GenerateParams) -> str | None:
        """Why llama.cpp cannot take ``params`` (an ``extra`` it has no sampler for), or None."""
        return _extra_problem(params)

    # -- generation ----------------------------------------------------------------------

    async def generate(self, requests: Sequence[GenerationRequest]) -> list[GenerationResult]:
        """Run the requests one after another in one worker thread; results in order."""
        return await self._on_worker(self._generate_all, list(requests))

    def _generate_all(self, requests: list[GenerationRequest]) -> list[GenerationResult]:
        llm = self._loaded()
        return [self._generate_one(llm, request) for request in requests]

    def _generate_one(self, llm: llama_cpp.Llama, request: GenerationRequest) -> GenerationResult:
        params = self.params.merge(request.params)
        problem = _extra_problem(params)
        if problem is None and (request.messages is None) == (request.prompt is None):
            problem = "a request needs exactly one of messages or prompt"
        if problem:
            return GenerationResult(request.request_id, error=FatalRequestError(problem))
        responses: list[Response] = []
        prompt_tokens = completion_tokens = 0
        # By default the KV cache of the previous prompt's common prefix is reused (a chat
        # template's system prompt, a shared instruction): on short prompts that is a third of
        # the work. _cap_prompt_reuse keeps answers independent of what ran before;
        # cache_prompt=false evaluates every prompt afresh all the same.
        if not self.config.get("cache_prompt", True):
            llm.reset()  # type: ignore[no-untyped-call]
        try:
            for seed in _sample_seeds(params.seed, request.n):
                response, usage = self._sample(llm, request, params, seed)
                responses.append(response)
                prompt_tokens = usage.prompt_tokens
                completion_tokens += usage.completion_tokens
        except GenerationError as error:
            llm.reset()  # type: ignore[no-untyped-call]
            return GenerationResult(request.request_id, error=error)
        return GenerationResult(
            request.request_id,
            responses=responses,
            usage=Usage(prompt_tokens=prompt_tokens, completion_tokens=completion_tokens),
        )

    def _sample(
        self, llm: llama_cpp.Llama, request: GenerationRequest, params: GenerateParams, seed: int
    ) -> tuple[Response, Usage]:
        recorder = self._recorder
        assert recorder is not None  # set with _llm
        recorder.arm((params.top_logprobs or 0) if params.logprobs else None)
        kwargs = _sampling_kwargs(params, seed)
        if params.response_format is not None:
            kwargs["grammar"] = self._grammars.get(params.response_format)
        try:
            if request.messages is not None:
                messages: Any = request.messages  # plain dicts, as llama-cpp-python reads them
                out: Any = llm.create_chat_completion(messages=messages, **kwargs)
                text = out["choices"][0]["message"].get("content") or ""
            else:
                out = llm.create_completion(prompt=request.prompt or "", **kwargs)
                text = out["choices"][0]["text"]
        except ValueError as exc:
            raise self._request_error(exc, params) from exc
        except Exception as exc:  # llama_decode failed (KV cache full), a malformed message...
            raise FatalRequestError(
                f"llama.cpp failed on this request: {type(exc).__name__}: {exc}"
            ) from exc
        finally:
            recorded = recorder.disarm()
        usage = out.get("usage") or {}
        n_completion = int(usage.get("completion_tokens", 0))
        logprobs = None
        if params.logprobs:
            if len(recorded) < n_completion:
                raise FatalRequestError(
                    f"llama-cpp-python {llama_cpp.__version__} no longer samples through "
                    "Llama.sample, where promptmill reads logprobs: use 0.3.36, the version "
                    "this backend is tested with, or leave logprobs out"
                )
            # The tokens of the answer: an end-of-generation token sampled after them is not.
            logprobs = recorded[:n_completion]
        return (
            Response(
                text=text, finish_reason=out["choices"][0].get("finish_reason"), logprobs=logprobs
            ),
            Usage(
                prompt_tokens=int(usage.get("prompt_tokens", 0)), completion_tokens=n_completion
            ),
        )

    def _request_error(self, exc: ValueError, params: GenerateParams) -> FatalRequestError:
        match = _CONTEXT_OVERFLOW.search(str(exc))
        if match is None:
            return FatalRequestError(f"llama.cpp refused this request: {exc}")
        tokens, n_ctx = int(match.group(1)), int(match.group(2))
        # Room for the prompt and the answer, rounded up to a multiple of 256.
        needed = -(-(tokens + (params.max_tokens or 256)) // 256) * 256
        return FatalRequestError(
            f"prompt has {tokens} tokens but n_ctx is {n_ctx}: raise n_ctx={needed} "
            f"(llamacpp!{self.model},n_ctx={needed}) or shorten the prompt"
        )


def _json_grammar(schema: dict[str, Any], text: str) -> LlamaGrammar:
    """llama.cpp's grammar of JSON matching ``schema`` (any JSON object for {})."""
    try:
        if schema:
            return LlamaGrammar.from_json_schema(text, verbose=False)
        return LlamaGrammar.from_string(JSON_GBNF, verbose=False)
    except Exception as exc:  # a schema feature llama.cpp's converter lacks
        raise FatalRequestError(f"llama.cpp cannot make a grammar of this schema: "
                                f"{type(exc).__name__}: {exc}") from None


def _cap_prompt_reuse(llm: llama_cpp.Llama) -> None:
    """Make ``llm`` re-evaluate at least the last two prompt tokens, even on a cache hit.

    llama-cpp-python reuses the KV cache of the longest common prefix and evaluates the rest
    of the prompt as one batch; on a full hit it evaluates only the last prompt token, alone.
    A one-token batch takes other kernels than a longer one, whose logits differ in the last
    bits, enough to change a sampled answer: the same request then answered differently
    after another one with the same prompt. Batches of two tokens or more give the same
    logits however the prompt is split, so keeping the suffix at two tokens or more makes a
    cache hit answer exactly as a fresh evaluation would (checked by the tests).
    """
    generate = llm.generate

    def generate_with_capped_reuse(tokens: Sequence[int], *args: Any, **kwargs: Any) -> Any:
        tokens = list(tokens)
        cached = llm.input_ids[: llm.n_tokens].tolist()
        common = 0
        for old, new in zip(cached, tokens, strict=False):
            if old != new:
                break
            common += 1
        keep = max(0, min(common, len(tokens) - 2))
        if keep < llm.n_tokens:
            llm.n_tokens = keep  # generate() drops the KV cache past this point
        return generate(tokens, *args, **kwargs)

    setattr(llm, "generate", generate_with_capped_reuse)  # noqa: B010 - as in _LogprobRecorder


class _LogprobRecorder:
    """Stands in for ``Llama.sample`` on one model and, when armed, notes each token's logprobs.

    ``Llama.generate`` calls ``self.sample(..., idx=position)`` for every token; the logits of
    that position are still in the context then, whatever ``logits_all`` says.
    """

    __slots__ = ("_llm", "_sample", "_top", "_entries", "_n_vocab")

    def __init__(self, llm: llama_cpp.Llama) -> None:
        self._llm = llm  # the model whose sampling this wraps
        self._sample = llm.sample  # the bound original method
        self._top: int | None = None  # how many alternatives to keep; None: not recording
        self._entries: list[dict[str, Any]] = []  # one per sampled token since arm()
        self._n_vocab = llm.n_vocab()  # the logits row length
        # An instance attribute shadows the method for this model only.
        setattr(llm, "sample", self)  # noqa: B010 - mypy refuses assigning to a method

    def arm(self, top: int | None) -> None:
        """Start noting logprobs with ``top`` alternatives each (None: note nothing)."""
        self._top = top
        self._entries = []

    def disarm(self) -> list[dict[str, Any]]:
        """Stop noting; what was noted since ``arm``."""
        entries, self._entries, self._top = self._entries, [], None
        return entries

    def __call__(self, *args: Any, **kwargs: Any) -> int:
        if self._top is None:
            return int(self._sample(*args, **kwargs))
        idx = kwargs.get("idx")
        relative = -1 if idx is None else idx - self._llm.n_tokens
        pointer = llama_cpp.llama_get_logits_ith(self._llm.ctx, relative)
        # Copied before sampling: the logits buffer belongs to the context.
        logits = np.ctypeslib.as_array(pointer, shape=(self._n_vocab,)).copy()
        token = int(self._sample(*args, **kwargs))
        # log softmax, evaluated only where needed: logprob(i) = logits[i] - log_normalizer.
        peak = float(logits.max())
        log_normalizer = peak + float(np.log(np.exp(logits - peak).sum(dtype=np.float64)))
        top: list[dict[str, Any]] = []
        if self._top:
            best = np.argpartition(logits, -self._top)[-self._top :]
            best = best[np.argsort(-logits[best], kind="stable")]
            top = [self._entry(int(i), float(logits[i]) - log_normalizer) for i in best]
        logprob = float(logits[token]) - log_normalizer
        self._entries.append({**self._entry(token, logprob), "top_logprobs": top})
        return token

    def _entry(self, token: int, logprob: float) -> dict[str, Any]:
        piece = self._llm.detokenize([token], special=True)
        return {
            "token": piece.decode("utf-8", errors="replace"),
            "logprob": logprob,
            "bytes": list(piece),
        }


def _sample_seeds(seed: int | None, n: int) -> Iterator[int]:
    """One seed per sample: seed, seed+1, ...; a random base when no seed was given."""
    base = random.randrange(_RANDOM_SEED) if seed is None else seed
    for i in range(n):
        yield (base + i) % _RANDOM_SEED


def _sampling_kwargs(params: GenerateParams, seed: int) -> dict[str, Any]:
    """llama-cpp-python's keyword arguments for ``params`` with OpenAI's meaning of each."""
    kwargs: dict[str, Any] = {
        "temperature": 1.0 if params.temperature is None else params.temperature,
        "top_p": 1.0 if params.top_p is None else params.top_p,
        # llama-cpp-python would otherwise apply its own top_k=40 and min_p=0.05.
        "top_k": 0,
        "min_p": 0.0,
        "repeat_penalty": 1.0,
        # None: until the context window is full, as OpenAI's chat API does.
        "max_tokens": params.max_tokens,
        "stop": list(params.stop or []),
        "seed": seed,
        "presence_penalty": params.presence_penalty or 0.0,
        "frequency_penalty": params.frequency_penalty or 0.0,
    }
    kwargs.update({k: v for k, v in params.extra.items() if k in EXTRA_SAMPLING})
    return kwargs


def _extra_problem(params: GenerateParams) -> str | None:
    """Why ``params.extra`` cannot be passed to llama.cpp, or None."""
    return extra_problem("llamacpp", params, EXTRA_SAMPLING)


__all__ = ["LlamaCppGenerator"]
