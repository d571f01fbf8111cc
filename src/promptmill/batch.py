"""Batch API mode: a job's pending requests sent as Batch API batches and collected, exactly once.

One run does what can be done now and returns: it finishes any step a killed run left (an
upload whose batch was never created is found by its name and re-used; a batch whose id was
never recorded is found by its input file), polls the submitted batches, downloads and
records the ended ones, and puts the requests still pending (new, failed lines, lines of
expired, failed or cancelled batches) into new batches, split under the API's limits. Rerun
the same command to go on; ``wait`` repeats that until no batch is left.

Every remote call is preceded by a commit of the step it starts and followed by a commit of
what it returned (``batch_ledger``), so a kill at any moment neither loses a batch nor
creates a second one for requests already submitted. The input file of a batch is derived
from the store and written again if it is missing; downloads go to disk (streamed), are
recorded a chunk of lines per transaction, and are deleted once recorded.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from promptmill.batch_api import BatchAPI
from promptmill.batch_files import (
    MAX_BYTES,
    MAX_REQUESTS,
    InputSplitter,
    SplitFile,
    custom_id,
    input_line,
    iter_lines,
    parse_output_line,
    request_of,
    temporary,
)
from promptmill.batch_ledger import BatchLedger, BatchRecord
from promptmill.errors import StoreError
from promptmill.structured import validated_line

if TYPE_CHECKING:
    from promptmill.generators.openai_ import OpenAIGenerator
    from promptmill.job import Job

log = logging.getLogger("promptmill")

_RECORD_CHUNK = 1000  # output lines per recording transaction
# How far back (seconds, against the server's clock) a batch created by a killed run is
# looked for among the account's batches.
_FIND_SLACK = 3600.0


@dataclass
class BatchOptions:
    """How a job uses the Batch API: file limits, window, polling, waiting, finishing."""

    max_requests: int = MAX_REQUESTS
    max_bytes: int = MAX_BYTES
    completion_window: str = "24h"
    poll_interval: float = 30.0
    wait: bool = False
    finish_online: bool = False
    # Tries of one Batch API call through connection failures, 429s and 5xx (with backoff)
    # before the run stops, saying to rerun.
    retries: int = 6


@dataclass
class BatchSummary:
    """Where a job's batches stand after a run."""

    active: int = 0  # batches promptmill still has something to do with
    batched: int = 0  # requests in those batches
    submitted: int = 0  # batches created this run
    recorded: int = 0  # batches collected this run
    by_status: Counter[str] = field(default_factory=Counter)


def batch_folder(store_path: Path) -> Path:
    """Where a job keeps its batch input files and downloads: beside its store."""
    return store_path.with_name(store_path.name.removesuffix(".db") + ".batches")


class BatchRunner:
    """Runs a job's batches; ``snapshot`` is what the progress display shows."""

    def __init__(self, job: Job, options: BatchOptions, max_attempts: int,
                 report: Callable[[str], None] | None = None) -> None:
        self.job = job
        self.options = options
        self.max_attempts = max_attempts
        self.report = report or log.info
        self.ledger = BatchLedger(job.store)
        self.folder = batch_folder(job.spec.store_path)
        self.generator: OpenAIGenerator = job.spec.generator  # type: ignore[assignment]
        self.summary = BatchSummary()
        self.snapshot: list[BatchRecord] = []  # read by the display's thread, replaced whole
        self.next_poll_at: float | None = None
        # With --wait, a progress line is reported whenever it changes, unless a live
        # display (which the CLI sets up) already shows the batches.
        self.progress_lines = True
        from promptmill.structured import validator_for

        # Structured output: each line's answers validated as online ones are.
        self.validator = validator_for(job.params.response_format)

    def api(self) -> BatchAPI:
        """A client of the job's server, with its key."""
        generator = self.generator
        return BatchAPI(generator.api_base, generator.api_key(), timeout=generator.timeout,
                        retries=self.options.retries)

    async def run(self) -> BatchSummary:
        """Advance every batch once (or, with ``wait``, until none is active)."""
        self.folder.mkdir(exist_ok=True)
        _remove_stale_temporaries(self.folder)
        self.snapshot = self.ledger.batches()
        shown = ""
        async with self.api() as api:
            while True:
                await self.advance(api)
                if not self.options.wait or not self.ledger.batches(active=True):
                    break
                line = self.progress_line()
                if self.progress_lines and line != shown:
                    self.report(line)
                    shown = line
                self.next_poll_at = time.time() + self.options.poll_interval
                await asyncio.sleep(self.options.poll_interval)
        summary = self.summary
        active = self.ledger.batches(active=True)
        summary.active = len(active)
        summary.batched = self.job.store.status().batched
        summary.by_status = Counter(b.shown_status for b in active)
        return summary

    async def advance(self, api: BatchAPI) -> None:
        """Finish what earlier runs left, poll, collect, and submit what is pending."""
        for batch in self.ledger.batches(active=True):
            await self._advance_one(api, batch)
        if not self.options.finish_online:
            for number in self.form():
                await self._advance_one(api, self.ledger.get(number))
        self.snapshot = self.ledger.batches()

    async def _advance_one(self, api: BatchAPI, batch: BatchRecord) -> None:
        if batch.step in ("prepared", "uploading"):
            batch = await self.upload(api, batch)
        if batch.step in ("uploaded", "creating"):
            batch = await self.create(api, batch)
        elif batch.step == "submitted":
            batch = self.ledger.update_remote(batch.id, await api.retrieve_batch(batch.batch_id
                                                                                 or ""))
        if batch.step == "ended":
            await self.collect(api, batch)
        self.snapshot = self.ledger.batches()

    def progress_line(self) -> str:
        """Where the active batches stand: how many in each state, requests answered."""
        active = [b for b in self.snapshot if b.active]
        states = Counter(b.shown_status for b in active)
        answered = sum((b.completed or 0) + (b.failed or 0) for b in active)
        total = sum(b.total or b.requests for b in active)
        return ("waiting for " + ", ".join(f"{n} {state}" for state, n in sorted(states.items()))
                + f" batch(es): {answered:,} of {total:,} requests answered so far")

    # -- forming batches -----------------------------------------------------------------

    def form(self) -> list[int]:
        """Put every pending request into new batches (files written, nothing sent).

        A batch holds one endpoint's requests to one model (the Batch API refuses others):
        a request file's lines naming several models or urls make a batch of each.
        """
        job, ledger, generator = self.job, self.ledger, self.generator
        if not ledger.unbatched_pending():
            return []
        tag = ledger.tag()
        numbers = itertools.count(ledger.next_number())
        number_of: dict[Path, int] = {}  # input files being written -> their batch number
        formed: list[int] = []
        splitters: dict[tuple[str, str], InputSplitter] = {}

        def path_for(_: int) -> Path:
            number = next(numbers)
            path = self.input_path(number)
            number_of[path] = number
            return path

        def splitter_for(endpoint: str, model: str) -> InputSplitter:
            splitter = splitters.get((endpoint, model))
            if splitter is None:
                def on_file(split: SplitFile) -> None:
                    number = number_of.pop(split.path)
                    ledger.add(number, split, endpoint, upload_name(tag, number, split.sha256))
                    os.replace(temporary(split.path), split.path)
                    formed.append(number)

                splitter = InputSplitter(path_for, on_file, self.options.max_requests,
                                         self.options.max_bytes)
                splitters[(endpoint, model)] = splitter
            return splitter

        try:
            for row in job.store.iter_pending():
                path, body = generator.request_body(job.build_request(row))
                splitter_for("/v1" + path, str(body.get("model"))).add(
                    input_line(custom_id(tag, row.id), "/v1" + path, body), row.id,
                    f"request {row.id} (input row {row.row_index})")
            for splitter in splitters.values():
                splitter.close()
        except BaseException:
            for splitter in splitters.values():
                splitter.abort()
            raise
        return sorted(formed)

    def input_path(self, number: int) -> Path:
        """The input file of batch ``number``."""
        return self.folder / f"{number:04d}.input.jsonl"

    def ensure_input(self, batch: BatchRecord) -> Path:
        """The batch's input file, written again from the store if it is missing."""
        path = self.input_path(batch.id)
        if path.exists() and path.stat().st_size == batch.bytes:
            return path
        tag, job = self.ledger.tag(), self.job
        written: list[SplitFile] = []
        splitter = InputSplitter(lambda n: path, written.append, batch.requests + 1,
                                 batch.bytes + 1)
        for row in self.ledger.members(batch.id):
            _, body = self.generator.request_body(job.build_request(row))
            splitter.add(input_line(custom_id(tag, row.id), batch.endpoint, body), row.id)
        splitter.close()
        if not written or written[0].sha256 != batch.sha256:
            temporary(path).unlink(missing_ok=True)
            raise StoreError(
                f"the input file of batch {batch.id} cannot be written again as it was: the job "
                "store changed; rerun with --new-job to start the job over")
        os.replace(temporary(path), path)
        return path

    # -- the remote steps ----------------------------------------------------------------

    async def upload(self, api: BatchAPI, batch: BatchRecord) -> BatchRecord:
        """Upload the input file, unless a killed run already did (then it is re-used)."""
        fresh = batch.step == "prepared"
        if fresh:
            batch = self.ledger.set_step(batch.id, "uploading")
        found = None if fresh else await api.find_file(batch.upload_name, batch.bytes)
        if found is None:
            found = await api.upload(self.ensure_input(batch), batch.upload_name)
        else:
            self.report(f"batch {batch.id}: re-using {found['id']}, uploaded by an earlier run")
        return self.ledger.set_step(batch.id, "uploaded", file_id=found["id"])

    async def create(self, api: BatchAPI, batch: BatchRecord) -> BatchRecord:
        """Create the batch, unless a killed run already did (then it is adopted)."""
        fresh = batch.step == "uploaded"
        if fresh:
            batch = self.ledger.set_step(batch.id, "creating")
        file_id = batch.file_id or ""
        found = None if fresh else await api.find_batch(file_id, batch.step_at - _FIND_SLACK)
        if found is None:
            found = await api.create_batch(
                file_id, batch.endpoint, self.options.completion_window,
                {"promptmill_job": self.ledger.tag(), "promptmill_batch": str(batch.id)})
            self.summary.submitted += 1
            self.report(f"batch {batch.id}: submitted {batch.requests:,} requests "
                        f"({batch.bytes / 1e6:,.1f} MB) as {found.get('id')}")
        else:
            self.report(f"batch {batch.id}: found {found.get('id')}, created by an earlier run")
        return self.ledger.update_remote(batch.id, found)

    async def collect(self, api: BatchAPI, batch: BatchRecord) -> None:
        """Download an ended batch's output and error files and record every line."""
        recorded = 0
        for kind, file_id in (("output", batch.output_file_id), ("errors", batch.error_file_id)):
            if not file_id:
                continue
            path = self.folder / f"{batch.id:04d}.{kind}.jsonl"
            if not path.exists():
                await api.download(file_id, path)
            recorded += self.record_file(batch, path)
        reason = (f"batch {batch.batch_id} ended {batch.status} without an answer to this "
                  "request" + (f" ({batch.error})" if batch.error else ""))
        unanswered = self.ledger.release(batch.id, reason, self.max_attempts)
        for suffix in ("input", "output", "errors"):
            (self.folder / f"{batch.id:04d}.{suffix}.jsonl").unlink(missing_ok=True)
        self.summary.recorded += 1
        again = self.ledger.unbatched_pending()
        self.report(f"batch {batch.id} ({batch.batch_id}): {batch.status}; recorded "
                    f"{recorded:,} lines, {unanswered:,} requests unanswered"
                    + (f"; {again:,} requests to send again" if again else ""))

    def record_file(self, batch: BatchRecord, path: Path) -> int:
        """Record a downloaded file's lines, a chunk per transaction; how many were new."""
        tag = self.ledger.tag()
        chunk: list[tuple[int, Any]] = []
        recorded = 0
        foreign = 0
        for raw in iter_lines(path):
            line = parse_output_line(raw)
            if self.validator is not None:
                line = validated_line(line, self.validator)
            request_id = request_of(line.custom_id, tag)
            if request_id is None:
                foreign += 1
                continue
            chunk.append((request_id, line))
            if len(chunk) >= _RECORD_CHUNK:
                recorded += self.ledger.record_lines(batch.id, chunk, self.max_attempts)
                chunk = []
        if chunk:
            recorded += self.ledger.record_lines(batch.id, chunk, self.max_attempts)
        if foreign:
            log.warning("batch %s: %d lines of %s name no request of this job (skipped)",
                        batch.id, foreign, path.name)
        return recorded


def upload_name(tag: str, number: int, sha256: str) -> str:
    """The file name a batch's input is uploaded under: how a killed upload is found again."""
    return f"promptmill-{tag}-{number:04d}-{sha256[:12]}.jsonl"


def _remove_stale_temporaries(folder: Path) -> None:
    """Temporary files of a killed run: input files being written, downloads under way."""
    for path in folder.glob(".*"):
        if path.name.endswith((".tmp", ".part")):
            path.unlink(missing_ok=True)
