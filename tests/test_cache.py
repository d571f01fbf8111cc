"""The response cache across jobs, against the test server: what hits, what misses, damage."""

from __future__ import annotations

import json
import logging
import random
import sqlite3
import threading
import time
from pathlib import Path

import pytest

import promptmill
import promptmill.jobcache
from promptmill.cache import ResponseCache, default_cache_path

QUESTIONS = [f"What is {i} times {i + 3}?" for i in range(30)]


def _write(path: Path, rows: list[dict[str, object]]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def _served(server) -> int:
    return server.stats.completed["/v1/chat/completions"]



def test_a_shuffled_copy_with_another_template_rendering_the_same_prompts_sends_nothing(
        server, tmp_path):
    model = f"http!test-model,api_base={server.url},temperature=0"
    first = _write(tmp_path / "a.jsonl", [{"id": i, "question": q}
                                          for i, q in enumerate(QUESTIONS)])
    server.stats.reset()
    promptmill.run(first, model, template="Q: {{ question }}", output=tmp_path / "a.out.jsonl")
    assert _served(server) == len(QUESTIONS)

    shuffled = [{"key": f"k{i}", "text": f"Q: {q}"} for i, q in enumerate(QUESTIONS)]
    random.Random(3).shuffle(shuffled)
    second = _write(tmp_path / "b.jsonl", shuffled)
    server.stats.reset()
    rows = promptmill.run(second, model, template="{{ text }}", output=tmp_path / "b.out.jsonl")
    assert _served(server) == 0
    assert sum(server.stats.received.values()) == 0
    assert all(r["status"] == "done" and r["responses"][0]["cached"] is True for r in rows)
    # The same answers as the first job's, row by row.
    before = {json.loads(line)["question"]: json.loads(line)["responses"][0]["text"]
              for line in (tmp_path / "a.out.jsonl").read_text().splitlines()}
    assert all(r["responses"][0]["text"] == before[r["text"][3:]] for r in rows)


def test_a_job_read_in_many_chunks_takes_every_cached_answer_and_sends_the_rest(server,
                                                                                tmp_path):
    # Four in flight: the store is read four requests a chunk, each chunk looked up while
    # the one before goes out. Cached: the first three chunks whole, then every other row;
    # 30 rows end in a chunk of two.
    model = f"http!test-model,api_base={server.url},temperature=0,max_concurrency=4"
    rows = [{"question": q} for q in QUESTIONS]
    cached = [i < 12 or i % 2 == 0 for i in range(len(rows))]
    earlier = promptmill.run([row for row, hit in zip(rows, cached, strict=True) if hit], model,
                             output=tmp_path / "a.jsonl")
    server.stats.reset()
    result = promptmill.run(rows, model, output=tmp_path / "b.jsonl")
    assert _served(server) == cached.count(False)
    assert [r["question"] for r in result] == QUESTIONS
    assert all(r["status"] == "done" and len(r["responses"]) == 1 for r in result)
    assert [bool(r["responses"][0].get("cached")) for r in result] == cached
    assert [r["responses"][0]["text"] for r, hit in zip(result, cached, strict=True) if hit] == [
        r["responses"][0]["text"] for r in earlier]


@pytest.mark.parametrize("supports_n", [True, False])
def test_k5_after_k3_asks_for_exactly_two_more_samples_a_row(make_server, recorder, tmp_path,
                                                             supports_n):
    seen = recorder(lambda body: ["word"] * body.get("n", 1))
    server = make_server(responder=seen)
    model = (f"http!test-model,api_base={server.url},seed=11"
             + ("" if supports_n else ",supports_n=false"))
    rows = [{"question": q} for q in QUESTIONS[:10]]
    promptmill.run(rows, model, k=3)
    seen.bodies.clear()
    result = promptmill.run(rows, model, k=5)
    asked = [body.get("n", 1) for body in seen.bodies]
    assert sum(asked) == 2 * len(rows)
    assert len(asked) == (len(rows) if supports_n else 2 * len(rows))
    for row in result:
        assert len(row["responses"]) == 5
        assert [bool(r.get("cached")) for r in row["responses"]] == [True] * 3 + [False] * 2
    if supports_n:
        # The two new samples are seeded past the three cached ones: new samples, not copies.
        assert {body["seed"] for body in seen.bodies} == {11 + 3}


def test_sampled_requests_use_the_cache_only_when_asked(server, tmp_path):
    model = f"http!test-model,api_base={server.url},temperature=0.8"
    rows = [{"question": q} for q in QUESTIONS[:5]]
    promptmill.run(rows, model)
    server.stats.reset()
    promptmill.run(rows, model)
    assert _served(server) == 5  # not cached by default
    promptmill.run(rows, model, cache=True)
    server.stats.reset()
    again = promptmill.run(rows, model, cache=True)
    assert _served(server) == 0 and all(r["responses"][0]["cached"] for r in again)
    server.stats.reset()
    promptmill.run(rows, model, cache=False)
    assert _served(server) == 5


@pytest.mark.parametrize("change", [
    {"params": {"temperature": 0, "max_tokens": 40}},
    {"params": {"temperature": 0, "top_p": 0.9}},
    {"params": {"temperature": 0, "stop": ["zzz"]}},
    {"params": {"temperature": 0, "seed": 5}},
    {"params": {"temperature": 0, "presence_penalty": 0.5}},
    {"system": "You are terse."},
    {"endpoint": True},
    {"model": "other-model"},
    {"text": True},
])
def test_changing_anything_that_decides_the_answer_misses(make_server, tmp_path, change):
    server = make_server(models=("test-model", "other-model"))
    rows = [{"question": q} for q in QUESTIONS[:4]]
    promptmill.run(rows, f"http!test-model,api_base={server.url}", params={"temperature": 0})
    server.stats.reset()
    target = make_server(models=("test-model", "other-model")) if change.get("endpoint") \
        else server
    model = f"http!{change.get('model', 'test-model')},api_base={target.url}"
    promptmill.run(rows, model, params=change.get("params", {"temperature": 0}),
                   system=change.get("system"), chat=not change.get("text"))
    sent = target.stats.completed["/v1/chat/completions"] + target.stats.completed[
        "/v1/completions"]
    assert sent == len(rows)


def test_options_that_change_no_answer_still_hit(server, tmp_path):
    rows = [{"question": q} for q in QUESTIONS[:4]]
    promptmill.run(rows, f"http!test-model,api_base={server.url},temperature=0")
    server.stats.reset()
    promptmill.run(rows, f"http!test-model,api_base={server.url},temperature=0,timeout=30,"
                   "price_in=1,price_out=2")
    assert _served(server) == 0


def test_a_cache_file_cut_off_mid_write_is_skipped_with_a_warning(server, tmp_path, caplog):
    model = f"http!test-model,api_base={server.url},temperature=0"
    rows = [{"question": f"{q} {'padding ' * 40}"} for q in QUESTIONS] * 1
    promptmill.run(rows, model)
    path = default_cache_path()
    assert path.stat().st_size > 8192
    with open(path, "r+b") as handle:
        handle.truncate(path.stat().st_size // 2)
    server.stats.reset()
    with caplog.at_level(logging.WARNING, logger="promptmill"):
        again = promptmill.run(rows, model)
    assert all(r["status"] == "done" for r in again)
    assert _served(server) == len(rows)  # nothing taken from the damaged file
    assert any("response cache" in m and "skipped" in m for m in caplog.messages)


def test_a_damaged_entry_is_a_miss_never_a_wrong_answer(server, tmp_path):
    model = f"http!test-model,api_base={server.url},temperature=0"
    rows = [{"question": q} for q in QUESTIONS[:3]]
    promptmill.run(rows, model)
    db = sqlite3.connect(default_cache_path())
    db.execute("UPDATE responses SET response = replace(response, 'You said', 'Forged')")
    db.commit()
    db.close()
    server.stats.reset()
    again = promptmill.run(rows, model)
    assert _served(server) == 3
    assert not any("Forged" in r["responses"][0]["text"] for r in again)


def test_a_locked_cache_never_fails_the_job(server, tmp_path, caplog):
    model = f"http!test-model,api_base={server.url},temperature=0"
    rows = [{"question": q} for q in QUESTIONS[:3]]
    promptmill.run(rows[:1], model)
    holder = sqlite3.connect(default_cache_path(), isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")  # another process writing, for longer than we wait
    try:
        with caplog.at_level(logging.WARNING, logger="promptmill"):
            again = promptmill.run(rows, model)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert all(r["status"] == "done" for r in again)
    assert any("response cache" in m for m in caplog.messages)


def test_the_cache_never_holds_a_secret(make_server, tmp_path, monkeypatch):
    server = make_server()
    secret = "sk-test-SECRETVALUE-0123456789abcdef"
    monkeypatch.setenv("OPENAI_API_KEY", secret)
    host = server.url.replace("http://", "http://user:hunter2pass@")
    rows = [{"question": q} for q in QUESTIONS[:3]]
    promptmill.run(rows, f"openai!test-model,api_base={server.url},temperature=0")
    promptmill.run(rows, f"http!test-model,api_base={host},temperature=0")
    raw = b"".join(p.read_bytes() for p in default_cache_path().parent.iterdir())
    assert raw and secret.encode() not in raw and b"hunter2pass" not in raw
    assert b"openai!test-model" in raw  # the model label `cache stats` shows


def test_cli_marks_counts_and_manages_the_cache(server, promptmill_cli, tmp_path):
    _write(tmp_path / "in.jsonl", [{"question": q} for q in QUESTIONS[:6]])
    model = f"http!test-model,api_base={server.url},temperature=0"
    first = promptmill_cli("run", "in.jsonl", "-o", "a.jsonl", "-m", model)
    assert first.returncode == 0, first.stderr
    second = promptmill_cli("run", "in.jsonl", "-o", "b.jsonl", "-m", model)
    assert "6 responses from the cache" in second.stderr
    lines = [json.loads(line) for line in (tmp_path / "b.jsonl").read_text().splitlines()]
    assert all(line["responses"][0]["cached"] for line in lines)

    stats = promptmill_cli("cache", "stats")
    assert "entries  6 responses" in stats.stdout and "http!test-model" in stats.stdout
    assert promptmill_cli("cache", "prune", "--older-than", "1d").stdout.startswith(
        "removed 0 entries")
    assert promptmill_cli("cache", "prune", "--older-than", "0s").stdout.startswith(
        "removed 6 entries")
    third = promptmill_cli("run", "in.jsonl", "-o", "c.jsonl", "-m", model, "--no-cache")
    assert "from the cache" not in third.stderr
    assert "entries  0 responses" in promptmill_cli("cache", "stats").stdout
    promptmill_cli("run", "in.jsonl", "-o", "d.jsonl", "-m", model)
    assert promptmill_cli("cache", "clear").stdout.startswith("removed 6 entries")
    bad_age = promptmill_cli("cache", "prune", "--older-than", "soon")
    assert bad_age.returncode == 2 and "not an age" in bad_age.stderr


def test_cache_path_option_and_a_file_that_is_no_cache(server, promptmill_cli, tmp_path):
    _write(tmp_path / "in.jsonl", [{"question": q} for q in QUESTIONS[:2]])
    model = f"http!test-model,api_base={server.url},temperature=0.5"
    run = promptmill_cli("run", "in.jsonl", "-o", "a.jsonl", "-m", model, "--cache=mine.db")
    assert run.returncode == 0, run.stderr
    with ResponseCache(tmp_path / "mine.db") as cache:
        assert cache.stats().entries == 2
    (tmp_path / "notes.txt").write_text("my notes\n" * 100)
    other = promptmill_cli("run", "in.jsonl", "-o", "b.jsonl", "-m", model,
                           "--cache=notes.txt")
    assert other.returncode == 0 and "skipped" in other.stderr
    assert (tmp_path / "notes.txt").read_text() == "my notes\n" * 100
    refused = promptmill_cli("cache", "clear", "--path", "notes.txt")
    assert refused.returncode == 2 and (tmp_path / "notes.txt").exists()


def test_a_schema_1_cache_is_emptied_once_and_then_used(server, tmp_path):
    import zlib

    path = tmp_path / "old.sqlite"
    old = sqlite3.connect(path, isolation_level=None)
    old.execute("PRAGMA journal_mode=WAL")
    old.execute("CREATE TABLE responses (key BLOB NOT NULL, sample INTEGER NOT NULL, response "
                "TEXT NOT NULL, checksum INTEGER NOT NULL, model TEXT NOT NULL, created_at "
                "REAL NOT NULL, UNIQUE (key, sample))")
    old.execute("PRAGMA application_id=1886217009")  # "pmc1"
    old.execute("PRAGMA user_version=1")
    text = '{"text":"four","finish_reason":"stop"}'
    old.execute("INSERT INTO responses VALUES (?, 0, ?, ?, 'http!m', 1e9)",
                (b"k" * 16, text, zlib.crc32(text.encode())))
    old.close()
    with ResponseCache(path) as cache:  # its keys were hashed another way: dropped
        assert cache.stats().entries == 0
    model = f"http!test-model,api_base={server.url},temperature=0"
    rows = [{"question": q} for q in QUESTIONS[:3]]
    promptmill.run(rows, model, cache=path)
    server.stats.reset()
    again = promptmill.run(rows, model, cache=path)
    assert _served(server) == 0 and all(r["responses"][0]["cached"] for r in again)


def test_a_running_job_takes_what_a_job_of_its_identity_wrote_meanwhile(make_server, tmp_path,
                                                                       monkeypatch):
    # The first job starts with an empty cache, so it looks nothing up; a second job of the
    # same model and params answers the first one's last rows while it runs. From its next
    # write on, the first job looks up again and takes those answers instead of sending.
    monkeypatch.setattr(promptmill.jobcache, "_WRITE_INTERVAL_S", 0.1)
    server = make_server(latency=0.05)
    model = f"http!test-model,api_base={server.url},temperature=0,max_concurrency=1"
    rows = [{"question": f"What is {i} squared?"} for i in range(80)]
    first: list[dict[str, object]] = []
    runner = threading.Thread(target=lambda: first.extend(
        promptmill.run(rows, model, output=tmp_path / "a.jsonl")))
    runner.start()
    deadline = time.monotonic() + 60
    while _served(server) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    promptmill.run(rows[70:], model, output=tmp_path / "b.jsonl")
    assert _served(server) < 70  # the second job ended before the first reached its rows
    runner.join(timeout=120)
    assert _served(server) == 80  # 70 by the first job, 10 by the second
    assert [bool(r["responses"][0].get("cached")) for r in first] == [False] * 70 + [True] * 10


def test_answers_a_killed_run_committed_but_never_copied_reach_the_cache_on_rerun(
        server, tmp_path, monkeypatch):
    model = f"http!test-model,api_base={server.url},temperature=0"
    rows = [{"question": q} for q in QUESTIONS[:8]]

    def killed(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt  # the process ends between the store's commit and the copy

    server.stats.reset()
    with monkeypatch.context() as patch:
        patch.setattr(ResponseCache, "fill", killed)
        with pytest.raises(KeyboardInterrupt):
            promptmill.run(rows, model, output=tmp_path / "a.jsonl")
    assert _served(server) == 8
    with ResponseCache(default_cache_path()) as cache:
        assert cache.stats().entries == 0
    # The rerun has nothing left to send, but copies what the killed run left uncopied.
    assert len(promptmill.run(rows, model, output=tmp_path / "a.jsonl")) == 8
    with ResponseCache(default_cache_path()) as cache:
        assert cache.stats().entries == 8
    server.stats.reset()
    other = promptmill.run(rows, model, output=tmp_path / "b.jsonl")
    assert _served(server) == 0 and all(r["responses"][0]["cached"] for r in other)


def test_every_answer_reaches_the_cache_when_copies_run_slower_than_answers_arrive(
        make_server, tmp_path, monkeypatch):
    # Copies start at every store commit and take longer than the job: the job ends with one
    # running and answers waiting behind it, and closing must copy those too.
    monkeypatch.setattr(promptmill.jobcache, "_WRITE_INTERVAL_S", 0.0)
    fill = ResponseCache.fill

    def slow(*args: object, **kwargs: object) -> tuple[int, bool]:
        done = fill(*args, **kwargs)  # type: ignore[arg-type]
        time.sleep(0.2)  # ends long after it read the store
        return done

    monkeypatch.setattr(ResponseCache, "fill", slow)
    server = make_server(latency=0.02)  # answers committed over many store commits
    model = f"http!test-model,api_base={server.url},temperature=0,max_concurrency=2"
    rows = [{"question": f"What is {i} to the fourth?"} for i in range(60)]
    assert len(promptmill.run(rows, model, output=tmp_path / "a.jsonl")) == 60
    with ResponseCache(default_cache_path()) as cache:
        assert cache.stats().entries == 60
    server.stats.reset()
    promptmill.run(rows, model, output=tmp_path / "b.jsonl")
    assert _served(server) == 0


def test_copies_into_the_cache_double_in_size(make_server, tmp_path, monkeypatch):
    # Entry ids are hashes, so each copy rewrites pages all over the file: copies of a fixed
    # size would each cost in step with the whole file. A run's copy waits for as many
    # answers as the run has copied (at least _WRITE_EVERY), so its copies double.
    monkeypatch.setattr(promptmill.jobcache, "_WRITE_EVERY", 8)
    fill = ResponseCache.fill
    copies: list[int] = []

    def counted(*args: object, **kwargs: object) -> tuple[int, bool]:
        done = fill(*args, **kwargs)  # type: ignore[arg-type]
        copies.append(done[0])
        return done

    monkeypatch.setattr(ResponseCache, "fill", counted)
    server = make_server(latency=0.01)  # a few answers a store commit: a copy could follow each
    model = f"http!test-model,api_base={server.url},temperature=0,max_concurrency=2"
    rows = [{"question": f"What is {i} plus {i}?"} for i in range(160)]
    assert len(promptmill.run(rows, model, output=tmp_path / "a.jsonl")) == 160
    assert sum(copies) == 160
    for i, size in enumerate(copies[:-1]):  # the last: what the close found waiting
        assert size >= max(8, sum(copies[:i])), copies
    assert len(copies) <= 6, copies  # 8, 8, 16, 32, 64 and the rest; fixed copies: 20


def test_answers_of_a_copy_still_running_when_the_run_is_killed_reach_the_cache_on_rerun(
        make_server, tmp_path, monkeypatch):
    # The first copy runs (on its thread) while the store commits more answers, and the run
    # dies before it commits: the store's meta must still point at that copy's answers.
    monkeypatch.setattr(promptmill.jobcache, "_WRITE_INTERVAL_S", 0.0)
    server = make_server(latency=0.01)
    model = f"http!test-model,api_base={server.url},temperature=0,max_concurrency=2"
    rows = [{"question": f"What is {i} cubed?"} for i in range(40)]
    calls: list[int] = []

    def killed(*args: object, **kwargs: object) -> None:
        calls.append(1)
        if len(calls) == 1:
            time.sleep(0.3)  # still running while the store commits the next answers
        raise KeyboardInterrupt  # the process ends before the copy commits

    with monkeypatch.context() as patch:
        patch.setattr(ResponseCache, "fill", killed)
        with pytest.raises(KeyboardInterrupt):
            promptmill.run(rows, model, output=tmp_path / "a.jsonl")
    store = sqlite3.connect(tmp_path / "a.jsonl.promptmill.db")
    answered = store.execute("SELECT COUNT(*) FROM requests WHERE status = 'done'").fetchone()[0]
    store.close()
    assert answered == 40  # every answer committed, most while the first copy ran
    with ResponseCache(default_cache_path()) as cache:
        assert cache.stats().entries == 0
    promptmill.run(rows, model, output=tmp_path / "a.jsonl")
    with ResponseCache(default_cache_path()) as cache:
        assert cache.stats().entries == 40
    server.stats.reset()
    other = promptmill.run(rows, model, output=tmp_path / "b.jsonl")
    assert _served(server) == 0 and all(r["responses"][0]["cached"] for r in other)


def test_a_schema_2_cache_keeps_answering(server, tmp_path):
    # Schema 2 recorded no job identities: its entries must still be looked up.
    path = tmp_path / "c.sqlite"
    model = f"http!test-model,api_base={server.url},temperature=0"
    rows = [{"question": q} for q in QUESTIONS[:3]]
    promptmill.run(rows, model, cache=path)
    old = sqlite3.connect(path, isolation_level=None)
    old.execute("DROP TABLE identities")
    old.execute("PRAGMA user_version=2")
    old.close()
    server.stats.reset()
    again = promptmill.run(rows, model, cache=path)
    assert _served(server) == 0 and all(r["responses"][0]["cached"] for r in again)


def _altered_after_planning(server, tmp_path: Path, monkeypatch, *statements: str) -> None:
    """Plan a job of 12 rows and stop before anything is sent (as a kill right after
    planning), run ``statements`` on its store, run it to the end; then a job over the rows
    in reverse order must take every answer from the cache."""
    from promptmill.engine.dispatch import Dispatcher

    async def killed(self: object) -> None:
        raise KeyboardInterrupt

    model = f"http!test-model,api_base={server.url},temperature=0"
    rows = [{"question": q} for q in QUESTIONS[:12]]
    output = tmp_path / "a.jsonl"
    with monkeypatch.context() as patch:
        patch.setattr(Dispatcher, "run", killed)
        with pytest.raises(KeyboardInterrupt):
            promptmill.run(rows, model, output=output)
    store = sqlite3.connect(output.with_name(output.name + ".promptmill.db"),
                            isolation_level=None)
    assert store.execute("SELECT COUNT(*) FROM requests WHERE cache_key IS NOT NULL "
                         "AND cache_seed IS NOT NULL").fetchone() == (12,)
    for statement in statements:
        store.execute(statement)
    store.close()
    server.stats.reset()
    assert len(promptmill.run(rows, model, output=output)) == 12
    assert _served(server) == 12
    server.stats.reset()
    again = promptmill.run(rows[::-1], model, output=tmp_path / "b.jsonl")
    assert _served(server) == 0 and all(r["responses"][0]["cached"] for r in again)


def test_a_job_planned_before_keys_were_planned_resumes_and_fills_the_cache(
        server, tmp_path, monkeypatch):
    # A store of schema 6 (before planning hashed each request's cache key): its requests
    # carry no keys, so dispatch hashes them, and what it writes must be what a job planned
    # with keys looks up.
    _altered_after_planning(server, tmp_path, monkeypatch,
                            "ALTER TABLE requests DROP COLUMN cache_key",
                            "ALTER TABLE requests DROP COLUMN cache_seed",
                            "DELETE FROM meta WHERE key = 'cache_keys'",
                            "PRAGMA user_version=6")


def test_keys_planned_under_another_identity_are_never_used(server, tmp_path, monkeypatch):
    # The keys a store holds count only for the job identity its meta names (a fleet whose
    # endpoints changed since planning has another): otherwise dispatch hashes its own.
    _altered_after_planning(server, tmp_path, monkeypatch,
                            "UPDATE requests SET cache_key = cache_key + 1",
                            "UPDATE meta SET value = '7' WHERE key = 'cache_keys'")


def test_requests_planned_without_keys_beside_keyed_ones_are_hashed_on_dispatch(
        server, tmp_path, monkeypatch):
    # Planning interrupted, resumed with the cache off (no keys), dispatched with it on.
    _altered_after_planning(server, tmp_path, monkeypatch, "UPDATE requests SET cache_key = "
                            "NULL, cache_seed = NULL WHERE id % 2 = 1")


def test_a_schema_3_cache_is_upgraded_and_keeps_answering(server, tmp_path):
    # Schema 4 only adds entries copied from a job store as the list of their one response
    # (schema 3's are bare responses, as entries of several samples still are: the k=5
    # after k=3 test reads those).
    path = tmp_path / "c.sqlite"
    model = f"http!test-model,api_base={server.url},temperature=0"
    rows = [{"question": q} for q in QUESTIONS[:3]]
    first = promptmill.run(rows, model, cache=path)
    db = sqlite3.connect(path, isolation_level=None)
    texts = [text for (text,) in db.execute("SELECT response FROM responses")]
    assert len(texts) == 3 and all(t.startswith('[{"text"') for t in texts)
    db.execute("PRAGMA user_version=3")
    db.close()
    server.stats.reset()
    again = promptmill.run(rows, model, cache=path)
    assert _served(server) == 0 and all(r["responses"][0]["cached"] for r in again)
    assert [r["responses"] for r in again] == [
        [{**r["responses"][0], "cached": True}] for r in first]
    with ResponseCache(path) as cache:
        assert cache.db.execute("PRAGMA user_version").fetchone()[0] == 4


def test_a_local_models_weights_are_told_apart_by_its_files_or_its_hub_revision(
    tmp_path, monkeypatch
):
    from promptmill.generators import get_generator

    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    (folder / "model.safetensors").write_bytes(b"x" * 10)
    local = get_generator(f"transformers!{folder}")
    first = local.weights_stamp()
    assert first and first == local.weights_stamp()
    (folder / "model.safetensors").write_bytes(b"y" * 11)  # retrained in place
    assert local.weights_stamp() != first
    # A hub name: the revision the local hub cache resolves it to (none cached: the name).
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.chdir(tmp_path)
    hub = get_generator("transformers!some-org/some-model")
    assert hub.weights_stamp() == {}
    ref = tmp_path / "hub" / "models--some-org--some-model" / "refs" / "main"
    ref.parent.mkdir(parents=True)
    ref.write_text("0123abcd\n")
    assert hub.weights_stamp() == {"revision": "0123abcd"}
    # A remote API's model: its name says it all; one served by its path (promptmill serve):
    # its files.
    assert get_generator("http!test-model,api_base=http://127.0.0.1:9/v1").weights_stamp() == {}
    served = get_generator(f"http!{folder},api_base=http://127.0.0.1:9/v1").weights_stamp()
    assert served == local.weights_stamp()
