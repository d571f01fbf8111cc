"""One generation job end to end: check, plan, dispatch, export.

Everything a job needs is checked before the first request: the input is read and every row
rendered while planning, so bad input fails with nothing sent and nothing stored lost.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from promptmill import data
from promptmill.engine.dispatch import Dispatcher, EngineConfig, EngineStats
from promptmill.errors import InputError, UsageError
from promptmill.generators.base import GenerationRequest, Generator
from promptmill.params import GenerateParams, translate
from promptmill.prompts.render import PromptSpec
from promptmill.store import DONE, FAILED, PENDING, JobStore, RequestRow, store_path_for

log = logging.getLogger("promptmill")

# Fields promptmill adds to every output row; an input row may not use them.
OUTPUT_FIELDS = ("responses", "usage", "model", "attempts", "status", "error")
# Fields taken as a row's id when the job names none: two rows with one id are refused.
ID_FIELDS = ("id", "unique_id")
# OpenAI accepts n up to 128; larger k is split into several sample groups.
_MAX_N = 128
# Tokens reserved for a completion when the job sets no max_tokens.
DEFAULT_COMPLETION_RESERVE = 512
_PLAN_CHUNK = 5000
# json.dumps with options builds a new encoder per call; planning a million rows calls it
# three million times, so the encoders are built once.
_to_json = json.JSONEncoder(ensure_ascii=False).encode
_row_to_json = json.JSONEncoder(ensure_ascii=False, default=str).encode
_key_to_json = json.JSONEncoder(sort_keys=True, ensure_ascii=False, default=str).encode


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
    # The row field naming each row's LoRA adapter (one of the generator's adapters()).
    adapter_field: str | None = None

    def __post_init__(self) -> None:
        self.input = Path(self.input)
        self.output = Path(self.output)
        if self.k < 1:
            raise InputError("-k must be at least 1")
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

    def effective_params(self, warn: bool = True) -> GenerateParams:
        """The generator's params merged with the job's, translated for the backend."""
        merged = self.generator.params.merge(self.params)
        gen = self.generator
        return translate(merged, gen.provider, gen.supported_params, warn=warn)

    def groups(self) -> list[int]:
        """How many samples each request of a row asks for (k split where n is unsupported)."""
        if not self.generator.supports_n:
            return [1] * self.k
        full, rest = divmod(self.k, _MAX_N)
        return [_MAX_N] * full + ([rest] if rest else [])

    def model_identifier(self) -> str:
        """The redacted identifier written to every output row (the job's params included)."""
        return self.generator.with_params(self.params).to_identifier()

    def fingerprint(self, input_sha256: str) -> dict[str, Any]:
        """What decides resume vs refuse (never a secret)."""
        gen = self.generator
        config = {k: v for k, v in sorted(gen.config.items()) if k not in _NOT_IN_FINGERPRINT}
        fingerprint = {
            "input_sha256": input_sha256,
            **self.prompts.fingerprint(),
            "model": f"{gen.provider}!{gen.model}",
            "model_options": config,
            "params": self.effective_params(warn=False).model_dump(exclude_none=True),
            "k": self.k,
        }
        # Only when present, so that the jobs stored before these existed still resume.
        files = gen.content_fingerprint()
        if files:
            fingerprint["model_files"] = files
        if self.adapter_field is not None:
            fingerprint["adapter_field"] = self.adapter_field
        return fingerprint


# Options that change how a backend runs, not what it answers.
_NOT_IN_FINGERPRINT = frozenset(
    {"timeout", "api_key_env", "n_threads", "n_threads_batch", "verbose"}
)


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
        spec.generator.check_ready()
        params = spec.effective_params()
        fingerprint = spec.fingerprint(data.file_sha256(spec.input))
        store = JobStore(spec.store_path)
        try:
            status = store.status()
            untouched = status.done + status.failed == 0
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
        store, spec = self.store, self.spec
        planned = int(store.get_meta("planned_rows") or 0)
        complete = bool(store.get_meta("planned_complete"))
        limit = spec.limit
        if complete and (limit is None or limit <= planned):
            return self._count_requests()
        renderer = spec.prompts.renderer(str(spec.input))
        groups = spec.groups()
        reserve = self.params.max_tokens or DEFAULT_COMPLETION_RESERVE
        rows: list[tuple[int, str]] = []
        requests: list[tuple[int, int, int, int, str, int]] = []
        next_index = planned
        reached_end = True
        ids = UniqueIds(spec) if spec.unique_ids else None
        try:
            # With an id check, rows planned before an interruption are read again for their ids.
            for index, row in data.read_rows(spec.input, start=0 if ids else planned):
                if limit is not None and index >= limit:
                    reached_end = False
                    break
                if ids is not None:
                    ids.add(index, row)
                if index < planned:
                    continue
                check_row(spec.input, index, row)
                rows.append(self._plan_row(renderer, groups, reserve, index, row, requests))
                next_index = index + 1
                if len(rows) >= _PLAN_CHUNK:
                    if ids is not None:
                        ids.flush()
                    store.add_planned(rows, requests, next_index)
                    rows, requests = [], []
            if ids is not None:
                ids.flush()
        finally:
            if ids is not None:
                ids.close()
        if rows:
            store.add_planned(rows, requests, next_index)
        store.set_meta(planned_complete=reached_end)
        return self._count_requests()

    def _plan_row(
        self, renderer: Any, groups: list[int], reserve: int, index: int, row: dict[str, Any],
        requests: list[tuple[int, int, int, int, str, int]],
    ) -> tuple[int, str]:
        """Render one row and append its requests; the row as the store keeps it."""
        rendered = renderer.render(index, row)
        fields = rendered.payload()
        if self.spec.adapter_field is not None:
            fields["adapter"] = self._row_adapter(index, row)
        payload = _to_json(fields)
        tokens = self.spec.generator.count_prompt_tokens(
            GenerationRequest("plan", self.params, rendered.messages, rendered.prompt)
        )
        for group, n in enumerate(groups):
            requests.append(
                (index * len(groups) + group, index, group, n, payload, tokens + reserve * n)
            )
        return index, _row_to_json(row)

    def _row_adapter(self, index: int, row: dict[str, Any]) -> str:
        """The adapter a row names in --adapter-field; "" (the base model) when empty."""
        name = self.spec.adapter_field
        value = row.get(name) if name else None
        if value in (None, ""):
            return ""
        known = self.spec.generator.adapters()
        if not isinstance(value, str) or value not in known:
            raise InputError(
                f"{data.row_place(self.spec.input, index)}: field {name!r} names adapter "
                f"{value!r}, which the model identifier does not give: known are "
                f"{', '.join(sorted(known))} (empty: the base model)"
            )
        return value

    def _count_requests(self) -> int:
        return int(self.store.db.execute("SELECT COUNT(*) FROM requests").fetchone()[0])

    # -- dispatch ------------------------------------------------------------------------

    def build_request(self, row: RequestRow) -> GenerationRequest:
        """The generator request for a planned request row."""
        params = self._group_params.get(row.sample_group * 1000 + row.n)
        if params is None:
            updates: dict[str, Any] = {"n": row.n}
            if self.params.seed is not None and row.sample_group:
                # Distinct seeds per sample group (a backend may use seed+i within a group of up
                # to _MAX_N samples), still deterministic for a given seed.
                updates["seed"] = self.params.seed + row.sample_group * _MAX_N
            params = self.params.model_copy(update=updates)
            self._group_params[row.sample_group * 1000 + row.n] = params
        payload = json.loads(row.payload)
        return GenerationRequest(
            str(row.id), params, messages=payload.get("messages"), prompt=payload.get("prompt"),
            adapter=payload.get("adapter"),
        )

    async def dispatch(
        self, config: EngineConfig, stats: EngineStats | None = None,
        on_dispatcher: Callable[[Dispatcher], None] | None = None,
    ) -> EngineStats:
        """Send every pending request; the generator is started and closed here."""
        stats = stats or EngineStats()
        status = self.store.status()
        stats.total = status.pending
        generator = self.spec.generator
        if status.pending == 0:
            return stats
        dispatcher = Dispatcher(self.store, generator, self.build_request, config, stats)
        if on_dispatcher is not None:
            on_dispatcher(dispatcher)
        await generator.start()
        try:
            await dispatcher.run()
        finally:
            await generator.close()
        return stats

    # -- export --------------------------------------------------------------------------

    def export(self, output: Path | None = None, fmt: str | None = None) -> int:
        """Write one row per input row, in input order; how many rows."""
        output = Path(output or self.spec.output)
        # An export killed midway leaves its temporary file; this job holds the store's lock,
        # so no other export of it is writing one now.
        for stale in data.temp_files_of(output):
            stale.unlink(missing_ok=True)
        return data.write_rows(
            iter_results(self.store, self.spec.model_identifier()), output,
            data.output_format(output, fmt),
        )


def check_row(source: Path, index: int, row: dict[str, Any]) -> None:
    """Refuse a row that uses one of the field names promptmill adds to every output row."""
    clash = next((name for name in OUTPUT_FIELDS if name in row), None)
    if clash:
        raise InputError(
            f"{data.row_place(source, index)}: field {clash!r} clashes with promptmill's "
            f"output fields ({', '.join(OUTPUT_FIELDS)}): rename it"
        )


class UniqueIds:
    """Refuses a second row with an id already seen, naming both rows.

    The ids seen are kept in a private temporary SQLite file, not a Python set, so memory
    stays flat however long the input; they are checked a chunk at a time.
    """

    def __init__(self, spec: JobSpec) -> None:
        self.source = spec.input
        self.field = spec.id_field
        self._db = sqlite3.connect("", isolation_level=None)  # "": deleted when closed
        self._db.execute(
            "CREATE TABLE ids (key TEXT PRIMARY KEY, row_index INTEGER NOT NULL) WITHOUT ROWID"
        )
        self._chunk: dict[str, int] = {}  # ids of rows not yet flushed -> their row index

    def add(self, index: int, row: dict[str, Any]) -> None:
        """Take one row's id; InputError if an earlier row has it."""
        name = self.field or next((f for f in ID_FIELDS if row.get(f) not in (None, "")), None)
        if name is None:
            return
        if row.get(name) in (None, ""):
            raise InputError(
                f"{data.row_place(self.source, index)}: no field {name!r} (--id-field {name}): "
                "add it to every row, or pass --id-field none to skip the id check"
            )
        key = name + "\0" + _key_to_json(row[name])
        if key in self._chunk:
            self._refuse(key, self._chunk[key], index)
        self._chunk[key] = index
        if len(self._chunk) >= _PLAN_CHUNK:
            self.flush()

    def flush(self) -> None:
        """Check the ids taken since the last flush against all earlier ones."""
        if not self._chunk:
            return
        db = self._db
        db.execute("BEGIN")
        try:
            db.executemany("INSERT INTO ids (key, row_index) VALUES (?, ?)", self._chunk.items())
        except sqlite3.IntegrityError:
            db.execute("ROLLBACK")
            for key, index in self._chunk.items():  # in row order: the first repeat is named
                first = db.execute("SELECT row_index FROM ids WHERE key = ?", (key,)).fetchone()
                if first is not None:
                    self._refuse(key, first[0], index)
            raise
        db.execute("COMMIT")
        self._chunk.clear()

    def _refuse(self, key: str, first: int, index: int) -> None:
        name, _, value = key.partition("\0")
        raise InputError(
            f"{data.row_place(self.source, index)}: duplicate {name} {value} (first on "
            f"{data.row_place(self.source, first, short=True)}): make the ids unique, name "
            "another field with --id-field NAME, or pass --id-field none to allow duplicates"
        )

    def close(self) -> None:
        """Delete the temporary file."""
        self._db.close()


def iter_results(store: JobStore, model: str | None = None) -> Iterator[dict[str, Any]]:
    """Every planned row with its responses, usage, attempts, status and error."""
    model = model or _stored_model(store)
    for _, raw, outcomes in store.iter_rows():
        row: dict[str, Any] = json.loads(raw)
        responses: list[Any] = []
        prompt_tokens = completion_tokens = attempts = 0
        errors: list[str] = []
        statuses = set()
        for _group, status, tries, answers, p_tokens, c_tokens, error in outcomes:
            statuses.add(status)
            attempts += tries
            if answers:
                responses.extend(json.loads(answers))
            prompt_tokens += p_tokens or 0
            completion_tokens += c_tokens or 0
            if error:
                errors.append(error)
        status = PENDING if PENDING in statuses else FAILED if FAILED in statuses else DONE
        row.update(
            responses=responses,
            usage={"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens},
            model=model,
            attempts=attempts,
            status=status,
            error="; ".join(errors) if errors else None,
        )
        yield row


def _stored_model(store: JobStore) -> str:
    fingerprint = store.get_meta("fingerprint") or {}
    return str(store.get_meta("model_identifier") or fingerprint.get("model"))


def run_async(coro: Any) -> Any:
    """Run a coroutine from sync code, also where an event loop already runs (notebooks)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    import concurrent.futures

    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()


