"""Keys are redacted by value, whatever their shape, and by pattern as a second net."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from promptmill.generators import get_generator
from promptmill.redaction import (
    RedactingFilter,
    Secret,
    known_secrets,
    redact_secrets,
    remember_secret,
)
from promptmill.store import FinishedRequest, JobStore

# Shapes no pattern knows: only redaction by value can catch them.
OPAQUE = "Zt8q-opaque-pm-canary-44xk"


def test_a_held_key_of_no_known_shape_is_redacted_by_value() -> None:
    key = "Zt8q-never-held-before-51"
    message = f"Incorrect API key provided: {key}. Check it."
    assert redact_secrets(message) == message  # not held yet, and no pattern knows it
    remember_secret(key)
    assert redact_secrets(message) == "Incorrect API key provided: ***. Check it."


@pytest.mark.parametrize("key", [
    "gsk_4fQ93LmZx0aWvB4pmRedactionTest1",
    "hf_pmRedactionTestHuggingFaceT0ken",
    "AIzaSyPmRedactionTestGoogle-9QwErTy",
    "sk-ant-api03-pmRedactionTest-abcdef",
    "sk-proj-pmRedactionTest_0123456789",
    "xai-pmRedactionTest0123456789abcd",
])
def test_known_key_shapes_are_redacted_even_when_never_held(key: str) -> None:
    assert key not in known_secrets()
    redacted = redact_secrets(f"401: Incorrect API key provided: {key}.")
    assert key not in redacted and key[4:-4] not in redacted
    assert redacted.startswith("401: Incorrect API key provided: ")


@pytest.mark.parametrize("fragment", [
    "Zt8q...44xk", "Zt8q-op****44xk", "Zt8q-opaque\u2026", "Zt8q-o*****************************",
])
def test_masked_fragments_of_a_held_key_are_redacted(fragment: str) -> None:
    remember_secret(OPAQUE)
    assert redact_secrets(f"Incorrect API key provided: {fragment}.") == (
        "Incorrect API key provided: ***.")


def test_masked_text_that_is_no_fragment_of_a_held_key_is_kept() -> None:
    remember_secret(OPAQUE)
    for text in ("loading...done", "Zt8q...zzzz", "a **bold** claim", "wait\u2026 what"):
        assert redact_secrets(text) == text


def test_short_values_and_ordinary_text_are_left_alone() -> None:
    remember_secret("EMPTY")  # vLLM's conventional placeholder key is no secret
    text = "EMPTY response; disk-full; scikit-learn; max_tokens=256; sk-learn"
    assert redact_secrets(text) == text


def test_environment_keys_and_bearer_headers_and_url_credentials(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MY_PROVIDER_API_KEY", "plain-value-from-env-0042")
    monkeypatch.setenv("SERVICE_ACCESS_TOKEN", "tok-value-from-env-0043")
    text = ("sent plain-value-from-env-0042 and tok-value-from-env-0043; "
            "Authorization: Bearer abc.def.ghi; https://me:pa55word@host/v1; api-key: q1w2e3r4")
    redacted = redact_secrets(text)
    for secret in ("plain-value-from-env-0042", "tok-value-from-env-0043", "abc.def.ghi",
                   "pa55word", "q1w2e3r4"):
        assert secret not in redacted, redacted
    assert "https://me:***@host/v1" in redacted


def test_a_secret_remembers_itself_and_never_shows() -> None:
    secret = Secret("another-opaque-secret-9981")
    assert "another-opaque-secret-9981" in known_secrets()
    assert "9981" not in f"{secret} {secret!r} {secret:>40}"


def test_a_key_read_from_a_dotenv_file_is_remembered(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("PM_CREDENTIAL", raising=False)
    (tmp_path / ".env").write_text("PM_CREDENTIAL=dotenv-held-credential-77\n")
    generator = get_generator("http!m,api_base=http://127.0.0.1:9/v1,api_key_env=PM_CREDENTIAL")
    assert generator.api_key() == "dotenv-held-credential-77"
    assert redact_secrets("echo dotenv-held-credential-77") == "echo ***"


def test_log_records_are_redacted_message_arguments_and_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    remember_secret(OPAQUE)
    logger = logging.getLogger("promptmill")
    with caplog.at_level(logging.WARNING, logger="promptmill"):
        logger.warning("server said %s", f"bad key {OPAQUE}")
        try:
            raise ValueError(f"key {OPAQUE} refused")
        except ValueError:
            logger.exception("failed")
    assert OPAQUE not in caplog.text
    assert "server said bad key ***" in caplog.text and "ValueError: key *** refused" in caplog.text
    record = logging.LogRecord("other", logging.ERROR, __file__, 1, "x %s", (OPAQUE,), None)
    assert RedactingFilter().filter(record) and record.getMessage() == "x ***"


def test_the_store_keeps_errors_redacted(tmp_path: Path) -> None:
    remember_secret(OPAQUE)
    with JobStore(tmp_path / "job.promptmill.db") as store:
        store.add_planned([[0], ["{}"]], [[0], [0], [0], [1], ["{}"], [1]], 1)
        store.record([FinishedRequest(0, 1, error=f"HTTP 401: key {OPAQUE} is wrong",
                                      error_kind="fatal")])
    raw = b"".join(path.read_bytes() for path in tmp_path.iterdir())
    assert OPAQUE.encode() not in raw and b"HTTP 401: key *** is wrong" in raw


def test_an_unclosed_quoted_key_is_redacted_and_the_rest_of_the_message_kept() -> None:
    text = ('bad option in "m,api_key="Zt8q-unclosed-canary-17, temprature=1": '
            "did you mean temperature?")
    redacted = redact_secrets(text)
    assert "Zt8q-unclosed-canary-17" not in redacted
    assert redacted.endswith("did you mean temperature?")
