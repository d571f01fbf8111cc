"""Hugging Face datasets as input, from local folders only (no test needs the internet)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import promptmill

pytestmark = pytest.mark.datasets
datasets = pytest.importorskip("datasets")

OFFLINE = {"HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1"}


def questions(count: int, offset: int = 0) -> list[dict]:
    return [{"unique_id": f"q{offset + i}", "question": f"What is {i} + {i}?"}
            for i in range(count)]


@pytest.fixture
def saved(tmp_path: Path) -> Path:
    """A DatasetDict written with save_to_disk: two splits."""
    folder = tmp_path / "saved_qa"
    datasets.DatasetDict({
        "train": datasets.Dataset.from_list(questions(30)),
        "test": datasets.Dataset.from_list(questions(12, offset=100)),
    }).save_to_disk(str(folder))
    return folder


@pytest.fixture
def parquet_repo(tmp_path: Path) -> Path:
    """A dataset repository laid out on disk as the hub keeps it: data/SPLIT-*.parquet."""
    folder = tmp_path / "repo_qa"
    (folder / "data").mkdir(parents=True)
    datasets.Dataset.from_list(questions(20)).to_parquet(
        str(folder / "data" / "train-00000-of-00001.parquet"))
    datasets.Dataset.from_list(questions(5, offset=50)).to_parquet(
        str(folder / "data" / "test-00000-of-00001.parquet"))
    return folder


def test_saved_dataset_runs_into_results_and_a_rerun_continues(
    tmp_path: Path, saved: Path, server, promptmill_cli
) -> None:
    model = f"http!test-model,api_base={server.url}"
    command = ["run", f"hf:{saved}@test", "-m", model, "--limit", "8"]
    server.stats.reset()
    first = promptmill_cli(*command, env=OFFLINE)
    assert first.returncode == 0, first.stderr
    out = tmp_path / "results" / "saved_qa-test__test-model.jsonl"
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["unique_id"] for r in rows] == [f"q{100 + i}" for i in range(8)]
    assert "What is 3 + 3?" in rows[3]["responses"][0]["text"]
    sent = server.stats.total_completed
    again = promptmill_cli(*command, env=OFFLINE)
    assert again.returncode == 0, again.stderr
    assert server.stats.total_completed == sent  # the same job, nothing sent twice
    more = promptmill_cli(*command[:-1], "12", env=OFFLINE)
    assert more.returncode == 0, more.stderr
    assert server.stats.total_completed == sent + 4
    assert len(out.read_text().splitlines()) == 12


def test_several_splits_need_one_named(saved: Path, server, promptmill_cli) -> None:
    # Two splits, one of them train: train is taken.
    result = promptmill_cli("run", f"hf:{saved}", "-m",
                            f"http!test-model,api_base={server.url}", "--dry-run", env=OFFLINE)
    assert result.returncode == 0 and "rows       30" in result.stdout
    wrong = promptmill_cli("run", f"hf:{saved}@validation", "-m",
                           f"http!test-model,api_base={server.url}", env=OFFLINE)
    assert wrong.returncode == 2
    assert "no split 'validation'" in wrong.stderr and "train, test" in wrong.stderr


def test_parquet_repository_layout_and_the_dataset_fingerprint(
    tmp_path: Path, parquet_repo: Path, server, promptmill_cli
) -> None:
    model = f"http!test-model,api_base={server.url}"
    out = tmp_path / "out.jsonl"
    done = promptmill_cli("run", f"hf:{parquet_repo}@test", "-m", model, "-o", out, env=OFFLINE)
    assert done.returncode == 0, done.stderr
    assert [json.loads(x)["unique_id"] for x in out.read_text().splitlines()] == [
        f"q{50 + i}" for i in range(5)]
    # Other content, another fingerprint: the job refuses to mix them.
    datasets.Dataset.from_list(questions(5, offset=70)).to_parquet(
        str(parquet_repo / "data" / "test-00000-of-00001.parquet"))
    changed = promptmill_cli("run", f"hf:{parquet_repo}@test", "-m", model, "-o", out,
                             env=OFFLINE)
    assert changed.returncode == 2 and "input" in changed.stderr


def test_a_missing_dataset_is_one_line(tmp_path: Path, promptmill_cli) -> None:
    result = promptmill_cli("run", f"hf:{tmp_path / 'nothing-here'}", "-m", "openai!gpt-4o-mini",
                            "--dry-run", env=OFFLINE)
    assert result.returncode == 2
    assert result.stderr.startswith("error: hf:") and "cannot load" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_library_takes_a_dataset_a_dataframe_or_dicts(server) -> None:
    model = f"http!test-model,api_base={server.url}"
    dataset = datasets.Dataset.from_list(questions(6))
    from_dataset = promptmill.run(dataset, model, limit=4)
    assert [r["unique_id"] for r in from_dataset] == ["q0", "q1", "q2", "q3"]
    frame = dataset.to_pandas()
    frame["n"] = range(6)  # numpy integers stay integers
    from_frame = promptmill.run(frame, model)
    assert [r["n"] for r in from_frame] == list(range(6))
    assert from_frame[2]["responses"][0]["text"] == from_dataset[2]["responses"][0]["text"]


def test_a_folder_rewritten_between_two_runs_is_read_again(tmp_path: Path, server) -> None:
    model = f"http!test-model,api_base={server.url}"
    folder = tmp_path / "again"
    datasets.Dataset.from_list(questions(2)).save_to_disk(str(folder))
    assert [r["unique_id"] for r in promptmill.run(f"hf:{folder}", model)] == ["q0", "q1"]
    datasets.Dataset.from_list(questions(3, offset=10)).save_to_disk(str(tmp_path / "tmp"))
    import shutil

    shutil.rmtree(folder)
    (tmp_path / "tmp").rename(folder)
    assert [r["unique_id"] for r in promptmill.run(f"hf:{folder}", model)] == [
        "q10", "q11", "q12"]
