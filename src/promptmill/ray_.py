"""Local-engine jobs on a Ray cluster: the engine runs in a pool of Ray actors.

``promptmill run ... --ray [ADDRESS]`` keeps the job what it is on one machine: planned into
the same SQLite store, with the same fingerprint, dispatched by the same engine and exported
the same way, so that ``status``, ``export``, ``extract`` and ``report`` work on it unchanged.
Only where the model runs changes: :class:`ReplicaPool` stands in for the job's generator
before the dispatcher, and sends each block of requests (``--batch-size`` of them) to one of
``--replicas`` Ray actors, each holding its own copy of the engine (``vllm!``,
``transformers!``, ``llamacpp!``) on its own GPUs (``--gpus-per-replica``, tensor parallel
inside a replica for ``vllm!``). While planning, the input is read as a Ray Dataset and its
rows rendered in Ray Data tasks (``promptmill.ray_data``).

Exactly once on the cluster: actors only compute; they return a block's results to the driver,
which owns the job's store and records them through the store's exactly-once path (each
request written once, in one transaction, only while still pending). So a result is visible
only once committed, whatever dies: a killed actor's block comes back as an error, its
requests are still pending and are sent again (Ray restarts the actor, reloading the model);
a killed driver takes its actors with it, and the rerun sends only what was never committed.
Per-block files on shared storage were the other choice: they would need a second commit
protocol (file written, then indexed) for no gain, since the driver must see every result to
show progress and the results of one block are small beside the model's work on it.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from promptmill.errors import (
    JobFatalError,
    MissingDependency,
    PromptmillError,
    RetryableError,
    UsageError,
)
from promptmill.generators.base import GenerationRequest, GenerationResult, Generator

log = logging.getLogger("promptmill")

# The Ray extra's range: checked against 2.60 (see pyproject.toml).
RAY_EXTRA = 'pip install "promptmill[ray]"'
# Object store of a cluster promptmill starts itself: blocks of prompts and answers are small.
LOCAL_OBJECT_STORE_BYTES = 256 * 1024 * 1024
# How often Ray restarts a replica that died (a killed process, an OOM) before giving up.
REPLICA_RESTARTS = 4
# Blocks a replica is sent ahead of the one it is working on, so that it never waits on the
# driver between blocks.
BLOCKS_AHEAD = 1


@dataclass(frozen=True)
class RayOptions:
    """Where and how wide a job runs on Ray; none of it is part of the job's fingerprint."""

    # "auto": RAY_ADDRESS, else a cluster running on this machine, else a new local one;
    # "local": always a new local cluster; else a cluster's address (ray://host:10001,
    # host:6379).
    address: str = "auto"
    replicas: int = 1
    gpus_per_replica: float = 0.0
    cpus_per_replica: float = 1.0
    # vllm!: GPUs one replica shards its model over (each replica takes this many GPUs).
    tensor_parallel: int = 1
    # Requests sent to a replica in one actor call: a block, committed together.
    batch_size: int = 16

    def __post_init__(self) -> None:
        for name in ("replicas", "tensor_parallel", "batch_size"):
            if getattr(self, name) < 1:
                raise UsageError(f"--{name.replace('_', '-')} must be at least 1")
        if self.gpus_per_replica < 0 or self.cpus_per_replica <= 0:
            raise UsageError("--gpus-per-replica must be >= 0 and --cpus-per-replica > 0")


def import_ray() -> Any:
    """``ray``, imported with its telemetry off, or a one-line error naming the extra."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    send_auth_token()  # read when ray is imported
    try:
        import ray
    except ImportError as exc:
        raise MissingDependency(
            f"--ray needs Ray, which is not installed: {RAY_EXTRA} "
            '(from a checkout: pip install -e ".[ray]")'
        ) from exc
    return ray


def check_engine(generator: Generator, options: RayOptions) -> None:
    """Refuse, before anything is planned, a job Ray cannot run: a remote API, a model
    object built in this process, tensor parallel where the engine has none."""
    from promptmill.generators.llamacpp_ import LlamaCppGenerator
    from promptmill.generators.local import LocalEngine

    if not isinstance(generator, LocalEngine | LlamaCppGenerator):
        raise UsageError(
            f"--ray runs local engines (vllm!, transformers!, llamacpp!), not "
            f"{generator.provider}!: drop --ray; a remote API scales with --max-concurrency"
        )
    if getattr(generator, "_wrapped", False):
        raise UsageError(
            "--ray needs the model as an identifier (each replica loads its own copy), not "
            "a model object built in this process: pass its identifier string"
        )
    if options.tensor_parallel > 1 and "tensor_parallel_size" not in generator.config_fields:
        raise UsageError(
            f"--tensor-parallel applies to vllm!; {generator.provider}! runs one replica on "
            "one device: use --replicas for more"
        )


def replica_spec(generator: Generator, options: RayOptions) -> tuple[type[Generator], str,
                                                                    dict[str, Any]]:
    """What a replica builds its own generator from: class, model, and keyword arguments
    (tensor parallel added here, so that the job's identifier and fingerprint stay those of
    the same job on one machine)."""
    config = {**generator.config, **generator.price_options}
    if options.tensor_parallel > 1:
        config["tensor_parallel_size"] = options.tensor_parallel
        # vLLM's own choice inside Ray would be its Ray executor, whose workers ask the
        # cluster for GPUs the replica already holds (and wait forever): its processes
        # instead, on the GPUs Ray gave the replica (CUDA_VISIBLE_DEVICES).
        config.setdefault("distributed_executor_backend", "mp")
    return type(generator), generator.model, {"params": generator.params, **config}


class Replica:
    """One copy of the engine inside a Ray actor: built and loaded once, then fed blocks."""

    def __init__(self, cls: type[Generator], model: str, kwargs: dict[str, Any]) -> None:
        # Ray starts actors with a bare root logger; the engine's warnings still reach the
        # driver's console through Ray's log forwarding.
        logging.basicConfig(level=logging.WARNING)
        self.generator = cls(model, **kwargs)
        self.loop = asyncio.new_event_loop()
        self.loop.run_until_complete(self.generator.start())

    def ready(self) -> int:
        """The actor's process id, once its model is loaded."""
        return os.getpid()

    def generate(self, requests: list[GenerationRequest]) -> list[GenerationResult]:
        """One block's results, in order."""
        return self.loop.run_until_complete(self.generator.generate(requests))


class ReplicaLost(RetryableError):
    """A replica died with a block in flight; the block's requests are sent again."""


class ReplicaPool(Generator):
    """The dispatcher's generator for a job on Ray: each call is one block sent to the
    least busy of ``replicas`` actors, each running the job's engine."""

    provider = "ray"
    is_local = True

    def __init__(self, generator: Generator, options: RayOptions) -> None:
        super().__init__(generator.model, params=generator.params)
        check_engine(generator, options)
        self.engine = generator
        self.options = options
        # A block per call; each replica busy with one block and BLOCKS_AHEAD queued.
        self.max_batch = options.batch_size  # type: ignore[misc]
        self.concurrent_batches = options.replicas * (1 + BLOCKS_AHEAD)  # type: ignore[misc]
        self.supports_n = generator.supports_n  # type: ignore[misc]
        self._ray: Any = None
        self._actors: list[Any] = []
        self._busy: list[int] = []  # blocks in flight per replica
        self._turn = itertools.count()  # ties between equally busy replicas, round robin
        self.pids: list[int] = []  # each replica's process id when it became ready

    def chat_format(self) -> Any:
        """The engine's own chat format (chats are rendered on the driver, as planned)."""
        return self.engine.chat_format()

    async def start(self) -> None:
        """Join (or start) the cluster and start every replica, waiting for their models."""
        ray = self._ray = joined(self.options)
        options = self.options
        remote = ray.remote(Replica).options(
            num_cpus=options.cpus_per_replica,
            num_gpus=options.gpus_per_replica * options.tensor_parallel,
            max_restarts=REPLICA_RESTARTS, max_task_retries=0)
        cls, model, kwargs = replica_spec(self.engine, options)
        self._actors = [remote.remote(cls, model, kwargs) for _ in range(options.replicas)]
        self._busy = [0] * options.replicas
        try:
            self.pids = list(await asyncio.gather(*(a.ready.remote() for a in self._actors)))
        except ray.exceptions.RayError as exc:
            await self.close()
            raise JobFatalError(f"the Ray replicas of {self.engine.provider}!"
                                f"{self.engine.model} did not start: {_cause(exc)}") from None
        log.info("%d Ray replica(s) of %s ready (pids %s)", len(self._actors),
                 self.engine.to_identifier(), self.pids)

    async def close(self) -> None:
        """Stop the replicas (a local cluster started for the job stops when the process
        ends, so that planning and dispatch, or a notebook's jobs, share it)."""
        ray = self._ray
        if ray is None:
            return
        for actor in self._actors:
            ray.kill(actor, no_restart=True)
        self._actors = []

    async def generate(self, requests: Sequence[GenerationRequest]) -> list[GenerationResult]:
        """Send one block to the least busy replica; its results, in order."""
        ray = self._ray
        count = len(self._actors)
        turn = next(self._turn) % count
        index = min(range(count), key=lambda i: (self._busy[i], (i - turn) % count))
        self._busy[index] += 1
        try:
            results: list[GenerationResult] = await self._actors[index].generate.remote(
                list(requests))
        except ray.exceptions.RayTaskError as exc:
            # The engine raised for the whole block: the dispatcher treats it as any call's.
            raise (_promptmill_cause(exc) or ReplicaLost(_cause(exc))) from None
        except ray.exceptions.RayActorError as exc:
            # Killed, OOM, node lost: Ray restarts the actor; the block is sent again.
            log.warning("Ray replica %d died with a block of %d requests in flight; they are "
                        "sent again (%s)", index, len(requests), _cause(exc))
            raise ReplicaLost(f"Ray replica {index} died: {_cause(exc)}") from None
        finally:
            self._busy[index] -= 1
        return results


def joined(options: RayOptions) -> Any:
    """``ray``, connected to the job's cluster (joined or started here, once a process)."""
    ray = import_ray()
    if not ray.is_initialized():
        connect(ray, options.address)
    return ray


def send_auth_token() -> None:
    """Join with Ray's token when one is at hand and RAY_AUTH_MODE says nothing.

    Ray 2.59+ starts a cluster (``ray start --head``) with token authentication and keeps the
    token in ``~/.ray/auth_token``, but a driver sends it only under RAY_AUTH_MODE=token (read
    when ray is imported): a job started from a fresh shell was refused. A cluster without
    authentication ignores it; a local cluster started here uses it. Not once ray is imported
    (it read the mode then): a local cluster's processes would require a token the driver
    does not send.
    """
    if "RAY_AUTH_MODE" in os.environ or "ray" in sys.modules:
        return  # imported already: its mode is set, and a cluster it starts must share it
    if (os.environ.get("RAY_AUTH_TOKEN") or os.environ.get("RAY_AUTH_TOKEN_PATH")
            or (Path.home() / ".ray" / "auth_token").is_file()):
        os.environ["RAY_AUTH_MODE"] = "token"


def connect(ray: Any, address: str) -> bool:
    """Join the cluster at ``address`` ("auto": RAY_ADDRESS or one on this machine, else a
    new local one; "local": a new local one); whether a local cluster was started here."""
    quiet = {"include_dashboard": False, "logging_level": logging.WARNING,
             "log_to_driver": True}
    if address == "auto":
        try:
            ray.init(address=os.environ.get("RAY_ADDRESS") or "auto", **quiet)
            return False
        except ConnectionError:
            if os.environ.get("RAY_ADDRESS"):
                raise UsageError(f"no Ray cluster answers at RAY_ADDRESS="
                                 f"{os.environ['RAY_ADDRESS']}: start it (ray start --head) "
                                 "or unset RAY_ADDRESS") from None
    elif address != "local":
        try:
            ray.init(address=address, **quiet)
            return False
        except ConnectionError as exc:
            raise UsageError(f"no Ray cluster answers at --ray {address}: start it "
                             f"(ray start --head) or check the address ({exc})") from None
    ray.init(object_store_memory=LOCAL_OBJECT_STORE_BYTES, **quiet)
    return True


def _promptmill_cause(exc: BaseException) -> PromptmillError | None:
    """The promptmill error a Ray error wraps (a task's, through Ray's layers), if any."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, PromptmillError):
            return current
        seen.add(id(current))
        inner = getattr(current, "cause", None)
        current = inner if isinstance(inner, BaseException) else current.__cause__
    return None


def _cause(exc: BaseException) -> str:
    """The first line of a Ray error (they carry whole remote tracebacks)."""
    from promptmill.redaction import redact_secrets

    text = str(exc).strip().splitlines()
    return redact_secrets(text[-1] if text else type(exc).__name__)[:300]


__all__ = ["RayOptions", "Replica", "ReplicaLost", "ReplicaPool", "check_engine", "connect",
           "import_ray", "joined", "replica_spec"]
