"""Hugging Face transformers in this process (``transformers!MODEL,...``), batched ``generate``.

Each call takes a chunk of requests, groups those that can share one ``generate`` (the same
sampling parameters and adapter), sorts each group by prompt length so that little is spent
on padding, and runs micro-batches of ``batch_size`` with left padding; every micro-batch's
results are handed back as soon as it ends. ``n`` is ``num_return_sequences``; output
logprobs come from the raw logits of each step (``output_logits``), as vLLM reports them.

With a seed, sampling is seeded per micro-batch: the same job gives the same answers, but a
resumed job, whose micro-batches hold other rows, may sample differently (greedy never does).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Sequence
from typing import Any

from promptmill.errors import FatalRequestError, GenerationError, ParamError
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
from promptmill.params import GenerateParams
from promptmill.structured import GrammarCache

_OPTIONS: dict[str, type | tuple[type, ...]] = {
    "batch_size": int,
    "device": str,
    "dtype": str,
    "trust_remote_code": bool,
    "revision": str,
    "adapter": (str, dict),
    "truncate": bool,
    "max_model_len": int,
}
# transformers sampling knobs accepted as extra.NAME (GenerationConfig fields).
EXTRA_SAMPLING: dict[str, type | tuple[type, ...]] = {
    "top_k": int,
    "min_p": (int, float),
    "repetition_penalty": (int, float),
    "min_new_tokens": int,
    "no_repeat_ngram_size": int,
}
DEFAULT_BATCH_SIZE = 16


class TransformersGenerator(LocalEngine):
    """A causal LM run by transformers' ``generate``, with optional PEFT LoRA adapters."""

    provider = "transformers"
    config_fields = frozenset(_OPTIONS)
    option_types = _OPTIONS
    max_batch = 256  # a chunk to sort by length; generate() runs batch_size at a time
    # Structured output: xgrammar's logits processor masks what the schema does not allow.
    supported_params = Generator.supported_params | {"response_format"}

    def __init__(self, model: str, *, hf_model: Any = None, tokenizer: Any = None,
                 **kwargs: Any) -> None:
        super().__init__(model, **kwargs)
        self.batch_size = int(self.config.get("batch_size", DEFAULT_BATCH_SIZE))
        if self.batch_size < 1:
            raise ParamError("transformers! option batch_size must be at least 1")
        self._model: Any = hf_model  # the (PEFT-wrapped, when adapters) model
        self._tokenizer: Any = tokenizer
        self._wrapped = hf_model is not None
        self._grammars = GrammarCache(self._compile_grammar)  # xgrammar's, per schema
        self._grammar_compiler: Any = None  # xgrammar's, built for the model's tokenizer

    @classmethod
    def wrap(cls, model: Any, tokenizer: Any, **options: Any) -> TransformersGenerator:
        """A generator answering with a model and tokenizer the caller already built."""
        name = str(getattr(model, "name_or_path", "") or type(model).__name__)
        params, config = wrap_options(options)
        return cls(name, hf_model=model, tokenizer=tokenizer, params=params, **config)

    # rigging's name for the same (VLLMGenerator.from_obj(llm), TransformersGenerator.from_obj(
    # model, tokenizer)): the seed's code runs as written.
    from_obj = wrap

    def with_params(self, params: GenerateParams) -> Generator:
        """The same model (loaded or wrapped) with ``params`` merged over its own."""
        clone = super().with_params(params)
        assert isinstance(clone, TransformersGenerator)
        clone._model, clone._tokenizer, clone._wrapped = self._model, self._tokenizer, \
            self._wrapped
        return clone

    def params_problem(self, params: GenerateParams) -> str | None:
        """Why the engine cannot take ``params`` (an extra it has no sampler for), or None."""
        return extra_problem(self.provider, params, EXTRA_SAMPLING)

    def weights_stamp(self) -> dict[str, Any] | None:
        """None for a wrapped model: its weights are in memory, and a notebook trains them
        between jobs under the same name."""
        return None if self._wrapped else super().weights_stamp()

    def check_ready(self) -> None:
        """Refuse a missing extra, bad adapters or extra.* before the job starts."""
        super().check_ready()
        require_module(self.provider, "transformers", "hf")
        if self._adapters:
            require_module(self.provider, "peft", "hf")
        check_adapters(self.provider, "adapter", self._adapters)
        problem = extra_problem(self.provider, self.params, EXTRA_SAMPLING)
        if problem:
            raise ParamError(problem)

    # -- lifecycle -----------------------------------------------------------------------

    @property
    def loaded(self) -> bool:
        """Whether the model is in memory."""
        return self._model is not None

    @property
    def hf_model(self) -> Any:
        """The loaded transformers model (PEFT-wrapped when adapters are given), or None."""
        return self._model

    @property
    def tokenizer(self) -> Any:
        """The loaded tokenizer, or None."""
        return self._tokenizer

    def engine_tokenizer(self) -> Any:
        """The loaded tokenizer, or None."""
        return self._tokenizer

    def load(self) -> None:
        """Load tokenizer, model and adapters now (blocking), if not loaded yet."""
        if self._model is not None:
            if self._adapters and not hasattr(self._model, "peft_config"):
                self._model = self._with_adapters(self._model)
            return
        self.check_ready()
        transformers = import_torch_stack(self.provider, "transformers", "hf")
        config = self.config
        common = {"token": self.api_key(), "trust_remote_code": config.get("trust_remote_code",
                                                                          False)}
        if "revision" in config:
            common["revision"] = config["revision"]
        tokenizer = transformers.AutoTokenizer.from_pretrained(self.model, **common)
        model = transformers.AutoModelForCausalLM.from_pretrained(
            self.model, dtype=config.get("dtype", "auto"), **common)
        model.to(self._device())
        model.eval()
        self._tokenizer = tokenizer
        self._model = self._with_adapters(model) if self._adapters else model

    def _device(self) -> str:
        device = str(self.config.get("device", "auto"))
        if device == "auto":
            import torch

            return "cuda" if torch.cuda.is_available() else "cpu"
        return device

    def _with_adapters(self, model: Any) -> Any:
        peft = import_torch_stack(self.provider, "peft", "hf")
        names = sorted(self._adapters)
        first, *rest = names
        model = peft.PeftModel.from_pretrained(model, str(self._adapters[first]),
                                               adapter_name=first)
        for name in rest:
            model.load_adapter(str(self._adapters[name]), adapter_name=name)
        model.eval()
        return model

    def unload(self) -> None:
        """Drop the model and free its memory (a wrapped model: promptmill's reference)."""
        self._model = None
        if not self._wrapped:
            self._tokenizer = None
        free_accelerator_memory()

    async def start(self) -> None:
        """Load the model unless it is loaded; adapters are added to a wrapped model."""
        await super().start()
        await asyncio.to_thread(self.load)

    # -- generation ----------------------------------------------------------------------

    async def stream(
        self, requests: Sequence[GenerationRequest]
    ) -> AsyncIterator[GenerationResult]:
        """Run the requests in length-sorted micro-batches; yield each batch's results."""
        if self._model is None:
            raise RuntimeError("transformers! generator not loaded: call load() or start()")
        groups: dict[str, list[tuple[GenerationRequest, list[int], GenerateParams]]] = {}
        for request in requests:
            try:
                params, adapter, ids = self._prepare(request)
            except GenerationError as error:
                yield GenerationResult(request.request_id, error=error)
                continue
            key = json.dumps([params.model_dump(exclude_none=True), adapter], sort_keys=True)
            groups.setdefault(key, []).append((request, ids, params))
        for key, members in groups.items():
            adapter = json.loads(key)[1]
            members.sort(key=lambda member: len(member[1]))
            for start in range(0, len(members), self.batch_size):
                batch = members[start:start + self.batch_size]
                try:
                    results = await asyncio.to_thread(self._generate_batch, batch, adapter)
                except Exception as exc:  # out of memory, a model error: these requests fail
                    failure = FatalRequestError(f"transformers generate failed: "
                                                f"{type(exc).__name__}: {exc}"[:600])
                    results = [GenerationResult(m[0].request_id, error=failure) for m in batch]
                for result in results:
                    yield result

    def _prepare(self, request: GenerationRequest) -> tuple[GenerateParams, str, list[int]]:
        """Merged params, the adapter ("" for the base model) and the prompt's token ids."""
        params = self.params.merge(request.params)
        problem = extra_problem(self.provider, params, EXTRA_SAMPLING)
        if problem:
            raise FatalRequestError(problem)
        tokenizer = self._tokenizer
        if request.messages is not None:
            if not getattr(tokenizer, "chat_template", None):
                raise FatalRequestError(
                    f"transformers!{self.model} has no chat template: send text prompts (--text)")
            text = tokenizer.apply_chat_template(request.messages, tokenize=False,
                                                 add_generation_prompt=True)
            ids = tokenizer.encode(text, add_special_tokens=False)
        elif request.prompt is not None:
            ids = tokenizer.encode(request.prompt)
        else:
            raise FatalRequestError("a request needs exactly one of messages or prompt")
        context = self._context_length()
        room = context - (params.max_tokens or 1)
        if len(ids) > room:
            if not self.config.get("truncate"):
                raise FatalRequestError(
                    f"prompt has {len(ids)} tokens but the model's context is {context} "
                    f"(with max_tokens {params.max_tokens or 1}): shorten the prompt, lower "
                    "max_tokens, or pass truncate=true to keep its end")
            ids = ids[-max(1, room):]
        return params, self.adapter_for(request), ids

    def _context_length(self) -> int:
        configured = self.config.get("max_model_len")
        if configured:
            return int(configured)
        config = getattr(self._model, "config", None)
        return int(getattr(config, "max_position_embeddings", 0) or 2048)

    def _generate_batch(self, batch: list[tuple[GenerationRequest, list[int], GenerateParams]],
                        adapter: str) -> list[GenerationResult]:
        """One ``generate`` over a micro-batch sharing params and adapter (worker thread)."""
        import torch

        model, tokenizer = self._model, self._tokenizer
        params = batch[0][2]
        n = params.n or 1
        pad = tokenizer.pad_token_id
        if pad is None:
            pad = tokenizer.eos_token_id
        width = max(len(ids) for _, ids, _ in batch)
        device = next(model.parameters()).device
        input_ids = torch.tensor([[pad] * (width - len(ids)) + ids for _, ids, _ in batch],
                                 device=device)
        attention = torch.tensor([[0] * (width - len(ids)) + [1] * len(ids)
                                  for _, ids, _ in batch], device=device)
        greedy = params.temperature == 0
        # Greedy decoding refuses num_return_sequences > 1: one answer, repeated n times.
        sequences = 1 if greedy else n
        kwargs: dict[str, Any] = {
            "max_new_tokens": params.max_tokens or max(1, self._context_length() - width),
            "do_sample": not greedy,
            "num_return_sequences": sequences,
            "pad_token_id": pad,
            "return_dict_in_generate": True,
            "output_logits": bool(params.logprobs),
            **params.extra,
        }
        if not greedy:
            kwargs["temperature"] = 1.0 if params.temperature is None else params.temperature
            kwargs["top_p"] = 1.0 if params.top_p is None else params.top_p
            kwargs.setdefault("top_k", 0)  # OpenAI's meaning: no top-k unless asked
        if params.stop:
            kwargs["stop_strings"] = list(params.stop)
            kwargs["tokenizer"] = tokenizer
        if params.response_format is not None:
            grammar = self._grammars.get(params.response_format)
            if grammar is not None:
                from xgrammar.contrib.hf import LogitsProcessor

                # One per generate(): it keeps a matcher per row of the batch.
                kwargs["logits_processor"] = [LogitsProcessor(grammar)]
        if params.seed is not None:
            torch.manual_seed(params.seed)
        with torch.inference_mode(), self._adapter_scope(adapter):
            out = model.generate(input_ids=input_ids, attention_mask=attention, **kwargs)
        results = [
            self._result(request, ids, out, index, sequences, width, params)
            for index, (request, ids, _) in enumerate(batch)
        ]
        if sequences < n:
            for result in results:
                result.responses = result.responses * n
                assert result.usage is not None
                result.usage.completion_tokens *= n
        return results

    def _compile_grammar(self, schema: dict[str, Any], text: str) -> Any:
        """xgrammar's compiled grammar of JSON matching ``schema`` (for this tokenizer)."""
        xgrammar = import_torch_stack(self.provider, "xgrammar", "hf")
        if self._grammar_compiler is None:
            vocab = getattr(self._model.config, "vocab_size", None)
            info = xgrammar.TokenizerInfo.from_huggingface(self._tokenizer, vocab_size=vocab)
            self._grammar_compiler = xgrammar.GrammarCompiler(info)
        # No free whitespace: a weak model would pad with it until max_tokens.
        return self._grammar_compiler.compile_json_schema(
            text if schema else '{"type": "object"}', any_whitespace=False)

    @contextlib.contextmanager
    def _adapter_scope(self, adapter: str) -> Any:
        model = self._model
        if not hasattr(model, "peft_config"):
            yield
        elif adapter:
            model.set_adapter(adapter)
            yield
        else:
            with model.disable_adapter():
                yield

    def _result(self, request: GenerationRequest, ids: list[int], out: Any, index: int, n: int,
                width: int, params: GenerateParams) -> GenerationResult:
        """The responses of one request: rows index*n .. index*n+n-1 of the output."""
        import torch

        tokenizer = self._tokenizer
        eos = _eos_ids(self._model, tokenizer)
        responses = []
        completion_tokens = 0
        for row in range(index * n, index * n + n):
            tokens = out.sequences[row, width:].tolist()
            finish = "length"
            for position, token in enumerate(tokens):
                if token in eos:
                    tokens, finish = tokens[:position], "stop"
                    break
            text = tokenizer.decode(tokens, skip_special_tokens=True)
            for stop in params.stop or []:
                cut = text.find(stop)
                if cut >= 0:
                    text, finish = text[:cut], "stop"
            logprobs = None
            if params.logprobs:
                logprobs = []
                for position, token in enumerate(tokens):
                    scores = torch.log_softmax(out.logits[position][row].float(), dim=-1)
                    top = []
                    if params.top_logprobs:
                        values, indices = scores.topk(params.top_logprobs)
                        top = [token_entry(tokenizer.decode([int(i)]), float(v))
                               for v, i in zip(values.tolist(), indices.tolist(), strict=True)]
                    logprobs.append(token_entry(tokenizer.decode([token]),
                                                float(scores[token]), top))
            completion_tokens += len(tokens)
            responses.append(Response(text, finish, logprobs))
        return GenerationResult(request.request_id, responses,
                                Usage(len(ids), completion_tokens))


def _eos_ids(model: Any, tokenizer: Any) -> set[int]:
    """Every token id that ends generation (the generation config may list several)."""
    found = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    ids = set(found if isinstance(found, list) else [found] if found is not None else [])
    if tokenizer.eos_token_id is not None:
        ids.add(tokenizer.eos_token_id)
    return ids


__all__ = ["TransformersGenerator"]
