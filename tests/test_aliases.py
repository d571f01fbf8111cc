"""Model aliases: the user's file, `models alias|list`, -m NAME,options; never a key."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from promptmill import get_generator
from promptmill.errors import UsageError


def test_alias_added_listed_used_and_removed(tmp_path: Path, server, promptmill_cli) -> None:
    target = f"http!test-model,api_base={server.url},temperature=0.2"
    added = promptmill_cli("models", "alias", "tiny", target)
    assert added.returncode == 0, added.stderr
    listed = promptmill_cli("models", "list")
    assert listed.returncode == 0, listed.stderr
    assert "smollm2" in listed.stdout and "llamacpp!smollm2" in listed.stdout
    assert "tiny" in listed.stdout and target in listed.stdout
    assert "http!" in listed.stdout and "openai!" in listed.stdout

    source = tmp_path / "q.jsonl"
    source.write_text('{"prompt": "hello"}\n')
    out = tmp_path / "a.jsonl"
    done = promptmill_cli("run", source, "-m", "tiny,temperature=0.9,max_tokens=5", "-o", out)
    assert done.returncode == 0, done.stderr
    row = json.loads(out.read_text())
    # Output rows name the full identifier, options given after the alias overriding its own.
    assert row["model"] == (f"http!test-model,api_base={server.url},temperature=0.9,"
                            "max_tokens=5")

    removed = promptmill_cli("models", "alias", "tiny", "--remove")
    assert removed.returncode == 0, removed.stderr
    gone = promptmill_cli("run", source, "-m", "tiny", "-o", out)
    assert gone.returncode == 2 and "tiny" in gone.stderr


def test_aliases_never_hold_keys(tmp_path: Path, promptmill_cli) -> None:
    refused = promptmill_cli("models", "alias", "k", "openai!gpt-4o-mini,api_key=sk-abc123secret")
    assert refused.returncode == 2 and "key" in refused.stderr
    assert "sk-abc123secret" not in refused.stderr
    assert not (tmp_path / "config" / "promptmill" / "models.toml").exists()
    env_ok = promptmill_cli("models", "alias", "k", "openai!gpt-4o-mini,api_key_env=MY_KEY")
    assert env_ok.returncode == 0, env_ok.stderr


def test_a_hand_written_alias_file_is_checked(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    folder = tmp_path / "promptmill"
    folder.mkdir()
    (folder / "models.toml").write_text(
        '[aliases]\nbeluga7b = "http!stabilityai/StableBeluga-7B,max_model_len=2048"\n'
    )
    gen = get_generator("beluga7b")
    assert gen.to_identifier() == "http!stabilityai/StableBeluga-7B,max_model_len=2048"
    assert gen.context_length() == 2048
    (folder / "models.toml").write_text('[aliases]\nsmollm2 = "openai!gpt-4o"\nb = "openai!o3"\n')
    with pytest.raises(UsageError, match="'smollm2' is a built-in alias"):
        get_generator("b")
    (folder / "models.toml").write_text('[aliases]\nx = "openai!gpt-4o,api_key=sk-zz"\n')
    with pytest.raises(UsageError, match=r"models\.toml: alias 'x' holds a key"):
        get_generator("x")
    # Identifiers with a provider never read the alias file.
    assert get_generator("openai!gpt-4o").model == "gpt-4o"
