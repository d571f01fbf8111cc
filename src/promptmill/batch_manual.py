"""The Batch API by hand (``promptmill batch ...``): input files written without sending, and
which server, key and batch a command means when the user names none.

``write_from_input`` plans an input as a job would (same rendering, params, checks) into a
temporary store and writes its requests as batch input lines; ``write_from_job`` writes a
job's pending requests with that job's own custom_ids. Files are split under the limits:
one file keeps the asked name, several are numbered (``in-001.jsonl``, ``in-002.jsonl``).
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from promptmill.batch_export import custom_id_of
from promptmill.batch_files import (
    MAX_BYTES,
    MAX_REQUESTS,
    InputSplitter,
    SplitFile,
    custom_id,
    input_line,
    temporary,
)
from promptmill.errors import MissingKeyError, UsageError
from promptmill.generators.base import env_value
from promptmill.job import Job, JobSpec, build_request
from promptmill.redaction import redact_secrets, remember_secret
from promptmill.store import JobStore

OPENAI_API_BASE = "https://api.openai.com/v1"
# Where ``batch submit`` remembers the last batch, in the working directory (as the seed's
# last_batch_id.tok did): an id and a URL, no key.
LAST_BATCH_FILE = ".promptmill-last-batch"


@dataclass(frozen=True)
class Server:
    """Which Batch API a command talks to, and the key it sends (from the environment)."""

    api_base: str
    api_key: str | None
    key_source: str | None


def server_for(api_base: str | None, api_key_env: str | None,
               job_model: str | None = None) -> Server:
    """The server of ``--api-base`` (or a job's identifier, or OpenAI's), its key from the env."""
    from promptmill.identifiers import parse_identifier

    provider = "openai"
    options: dict[str, Any] = {}
    if job_model:
        ident = parse_identifier(job_model)
        provider, options = ident.provider, ident.options
    base = api_base or options.get("api_base") or os.environ.get("OPENAI_BASE_URL") or (
        OPENAI_API_BASE)
    source = api_key_env or options.get("api_key_env") or (
        "OPENAI_API_KEY" if provider == "openai" or str(base).startswith(OPENAI_API_BASE)
        else None)
    key = env_value(source) if source else None
    remember_secret(key)
    if key is None and str(base).startswith(OPENAI_API_BASE):
        raise MissingKeyError(f"the OpenAI Batch API needs a key: set {source} in the "
                              "environment or in a .env file in the working directory")
    return Server(str(base).rstrip("/"), key, source)


def remember_last_batch(batch_id: str, api_base: str, folder: Path = Path(".")) -> None:
    """Note the batch ``batch submit`` created, for commands given no id.

    A password in the URL is not written down (the file would then hold a secret).
    """
    (folder / LAST_BATCH_FILE).write_text(
        json.dumps({"id": batch_id, "api_base": redact_secrets(api_base)}) + "\n",
        encoding="utf-8")


def last_batch(folder: Path = Path(".")) -> dict[str, str]:
    """The batch ``batch submit`` last created here, or UsageError."""
    path = folder / LAST_BATCH_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return {"id": str(data["id"]), "api_base": str(data["api_base"])}
    except (OSError, ValueError, KeyError, TypeError):
        raise UsageError("no batch id given and none submitted from this folder: pass a batch "
                         "id (see `promptmill batch list`) or --job OUTPUT") from None


def _split_writer(out: Path, max_requests: int, max_bytes: int
                  ) -> tuple[InputSplitter, list[SplitFile]]:
    written: list[SplitFile] = []

    def numbered(n: int) -> Path:
        return out.with_name(f"{out.stem}-{n:03d}{out.suffix or '.jsonl'}")

    def on_file(split: SplitFile) -> None:
        os.replace(temporary(split.path), split.path)
        written.append(split)

    return InputSplitter(numbered, on_file, max_requests, max_bytes), written


def _finish_files(out: Path, written: list[SplitFile]) -> list[Path]:
    """One file takes the asked name; several keep their numbers."""
    if len(written) == 1:
        os.replace(written[0].path, out)
        return [out]
    return [split.path for split in written]


def write_from_input(spec: JobSpec, out: Path, max_requests: int = MAX_REQUESTS,
                     max_bytes: int = MAX_BYTES) -> tuple[list[Path], int]:
    """Batch input file(s) for every request of ``spec``; (files, requests). Nothing is sent.

    custom_ids are the rows' ids (``id``, ``unique_id`` or ``--id-field``) where rows have
    them, else ``request-N`` (N the row's index), with ``-G`` added per sample group when k
    needs several requests per row.
    """
    generator: Any = spec.generator
    groups = len(spec.groups())
    count = 0
    with tempfile.TemporaryDirectory(prefix="promptmill-create-") as scratch:
        spec.store = Path(scratch) / "plan.db"
        store = JobStore(spec.store)
        splitter, written = _split_writer(out, max_requests, max_bytes)
        try:
            job = Job(spec, store, spec.effective_params())
            store.bind_job(spec.fingerprint(""))
            job.plan()
            for row in store.iter_pending():
                data = json.loads(store.db.execute("SELECT data FROM rows WHERE row_index = ?",
                                                   (row.row_index,)).fetchone()[0])
                # Ids are used only where planning checked them unique.
                custom = custom_id_of(data, row.row_index, row.sample_group, groups > 1,
                                      id_field=spec.id_field, use_ids=spec.unique_ids)
                path, body = generator.request_body(job.build_request(row))
                splitter.add(input_line(custom, "/v1" + path, body), row.id,
                             f"row {row.row_index}")
                count += 1
            splitter.close()
        except BaseException:
            splitter.abort()
            raise
        finally:
            store.close()
    return _finish_files(out, written), count


def write_from_job(store_path: Path, out: Path, max_requests: int = MAX_REQUESTS,
                   max_bytes: int = MAX_BYTES) -> tuple[list[Path], int]:
    """Batch input file(s) for a job's pending requests (in no batch), with its custom_ids."""
    from promptmill.batch_ledger import BatchLedger
    from promptmill.generators import get_generator
    from promptmill.params import make_params

    with JobStore(store_path) as store:
        fingerprint = store.get_meta("fingerprint") or {}
        model = store.get_meta("model_identifier")
        if not model:
            raise UsageError(f"{store_path} holds no planned job: run it first")
        generator: Any = get_generator(model)
        if not generator.supports_batch:
            raise UsageError(f"the job's model {model} has no Batch API")
        params = make_params(fingerprint.get("params") or {})
        cache: dict[int, Any] = {}
        tag = BatchLedger(store).tag()
        splitter, written = _split_writer(out, max_requests, max_bytes)
        count = 0
        try:
            for row in store.iter_pending():
                path, body = generator.request_body(build_request(row, params, cache))
                splitter.add(input_line(custom_id(tag, row.id), "/v1" + path, body), row.id,
                             f"request {row.id}")
                count += 1
            splitter.close()
        except BaseException:
            splitter.abort()
            raise
    if not count:
        raise UsageError(f"the job at {store_path} has no pending request outside a batch")
    return _finish_files(out, written), count
