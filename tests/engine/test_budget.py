"""The spending cap: reserved before each send, never exceeded, resumed with a higher cap."""

from __future__ import annotations

import asyncio
import json

import pytest

import promptmill
from promptmill.engine.budget import Budget, Prices, Spend
from promptmill.errors import RequestTimeout, ServerError, SpendingCapReached, UsageError

# Test-server prices: USD per million tokens, so a token costs a thousandth of a cent or so.
PRICE_IN, PRICE_OUT = 2000.0, 6000.0


def _server_spend(server) -> float:
    """What the server billed: every token it generated or read, at the job's prices."""
    stats = server.stats
    return (stats.prompt_tokens * PRICE_IN + stats.completion_tokens * PRICE_OUT) / 1e6


def test_budget_reserves_worst_cases_and_charges_what_was_used():
    budget = Budget(Prices(1.0, 2.0), 100, max_cost=0.001)  # $0.001 = 1,000 prompt tokens
    share = budget.worst(50, 2)  # 50 prompt + 2 x 100 completion
    assert share == Spend((50 * 1.0 + 200 * 2.0) / 1e6, 250)
    assert budget.try_reserve(share) and budget.try_reserve(share)
    assert not budget.fits(Spend(0.0002, 1))  # 0.0009 reserved + 0.0002 > 0.001
    budget.settle(share, 50, 30)  # used 50 + 30 of its 250
    assert budget.spent == Spend((50 + 60) / 1e6, 80)
    budget.settle(share, error=ServerError("500"))  # refused: nothing billed
    assert budget.spent.tokens == 80 and budget.in_flight == 0
    budget.try_reserve(share)
    budget.settle(share, error=RequestTimeout("no answer"))  # may have been billed: worst case
    assert budget.spent.tokens == 80 + 250
    tokens = Budget(None, 10, max_tokens=100)
    assert tokens.fits(tokens.worst(81, 2)) is False  # 81 + 2 x 10 > 100
    assert tokens.try_reserve(tokens.worst(80, 2))  # exactly the cap
    assert not tokens.try_reserve(tokens.worst(0, 1))


async def test_a_send_that_does_not_fit_waits_for_requests_in_flight():
    budget = Budget(Prices(1.0, 1.0), 10, max_cost=30 / 1e6)
    first = budget.worst(10, 1)  # 20 tokens, $20e-6
    assert budget.try_reserve(first)
    assert not budget.fits(first)
    changed = budget.changed()
    asyncio.get_running_loop().call_later(0.01, budget.settle, first, 5, 1)
    await asyncio.wait_for(changed, 1)
    assert budget.fits(budget.worst(10, 1))  # 6 spent + 20 <= 30


@pytest.mark.parametrize("k, supports_n", [(2, True), (3, False)])
def test_the_cap_is_never_exceeded_with_500_in_flight_and_the_rerun_finishes(
        make_server, tmp_path, k, supports_n):
    server = make_server(latency=0.05)
    model = (f"http!test-model,api_base={server.url},max_tokens=12,price_in={PRICE_IN:g},"
             f"price_out={PRICE_OUT:g}" + ("" if supports_n else ",supports_n=false"))
    rows = [{"id": i, "question": f"Please answer question number {i} briefly."}
            for i in range(300)]
    out = tmp_path / "out.jsonl"
    cap = 4.0
    with pytest.raises(SpendingCapReached, match=r"spent \$\d+\.\d{4} of --max-cost \$4"):
        promptmill.run(rows, model, k=k, output=out, max_cost=cap, max_concurrency=500)
    spent_first = _server_spend(server)
    assert 0 < spent_first <= cap
    # Most of the cap was used: the job stopped at the cap, not long before it.
    assert spent_first > cap * 0.8
    first_done = server.stats.completed["/v1/chat/completions"]

    server.stats.reset()
    result = promptmill.run(rows, model, k=k, output=out, max_cost=1000.0, max_concurrency=500)
    assert [row["id"] for row in result] == list(range(300))
    assert all(row["status"] == "done" and len(row["responses"]) == k for row in result)
    requests = len(rows) * (1 if supports_n else k)
    assert first_done + server.stats.completed["/v1/chat/completions"] == requests
    lines = out.read_text().splitlines()
    assert len(lines) == 300 and len({json.loads(line)["id"] for line in lines}) == 300


def test_max_tokens_total_caps_tokens(make_server, tmp_path):
    server = make_server()
    model = f"http!test-model,api_base={server.url},max_tokens=10"
    rows = [{"question": f"Question {i}: how many?"} for i in range(50)]
    with pytest.raises(SpendingCapReached, match="of --max-tokens-total 300 tokens"):
        promptmill.run(rows, model, output=tmp_path / "o.jsonl", max_tokens_total=300,
                       max_concurrency=20)
    used = server.stats.prompt_tokens + server.stats.completion_tokens
    assert 0 < used <= 300


def test_cli_stops_with_the_spent_amount_and_status_shows_spent_and_remaining(
        server, promptmill_cli, tmp_path):
    (tmp_path / "in.jsonl").write_text("".join(
        json.dumps({"question": f"Question {i}: what now?"}) + "\n" for i in range(40)))
    model = (f"http!test-model,api_base={server.url},max_tokens=10,price_in={PRICE_IN:g},"
             f"price_out={PRICE_OUT:g}")
    run = promptmill_cli("run", "in.jsonl", "-o", "out.jsonl", "-m", model, "--max-cost", "0.5")
    assert run.returncode == 3, run.stderr
    last = run.stderr.strip().splitlines()[-1]
    assert last.startswith("error: spending cap reached: spent $0.") and "rerun" in last
    status = promptmill_cli("status", "out.jsonl")
    spent_line = next(line for line in status.stdout.splitlines() if line.startswith("spent"))
    assert "of --max-cost $0.5 ($0.0" in spent_line and "remaining" in spent_line
    assert "pending" in status.stdout
    again = promptmill_cli("run", "in.jsonl", "-o", "out.jsonl", "-m", model, "--max-cost", "50")
    assert again.returncode == 0, again.stderr
    assert "spent $" in again.stderr
    assert len((tmp_path / "out.jsonl").read_text().splitlines()) == 40


def test_a_cap_without_a_price_or_a_bound_fails_before_anything_is_sent(server, tmp_path):
    rows = [{"question": "hi"}]
    server.stats.reset()
    with pytest.raises(UsageError, match="no price known for http!test-model: add price_in"):
        promptmill.run(rows, f"http!test-model,api_base={server.url},max_tokens=5",
                       max_cost=1.0)
    with pytest.raises(UsageError, match="set max_tokens"):
        promptmill.run(rows, f"http!test-model,api_base={server.url},price_in=1,price_out=1",
                       max_cost=1.0)
    assert sum(server.stats.received.values()) == 0


def test_prices_come_from_the_identifier_a_toml_file_or_the_table(tmp_path, monkeypatch):
    from promptmill.generators import get_generator
    from promptmill.pricing import price_of

    assert price_of(get_generator("openai!gpt-4o-mini-2024-07-18")) == Prices(0.15, 0.60)
    assert price_of(get_generator("openai!gpt-4o-mini"), batch=True) == Prices(0.075, 0.30)
    assert price_of(get_generator("openai!gpt-4o")) == Prices(2.5, 10.0)
    assert price_of(get_generator("http!gpt-4o,api_base=http://x/v1")) is None
    assert price_of(get_generator("openai!gpt-4o,price_out=1")) == Prices(2.5, 1.0)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    (tmp_path / "promptmill").mkdir()
    (tmp_path / "promptmill" / "prices.toml").write_text(
        '["http!mine"]\ninput = 0.5\noutput = 1.5\n["gpt-4o"]\ninput = 1\noutput = 2\n')
    assert price_of(get_generator("http!mine,api_base=http://x/v1")) == Prices(0.5, 1.5)
    assert price_of(get_generator("openai!gpt-4o")) == Prices(1.0, 2.0)
    with pytest.raises(UsageError, match="has price_in= but no price_out="):
        price_of(get_generator("http!other,api_base=http://x/v1,price_in=1"))
    (tmp_path / "promptmill" / "prices.toml").write_text('[x]\ninput = "cheap"\n')
    with pytest.raises(UsageError, match=r"prices file .*prices.toml: \[x\] needs input"):
        price_of(get_generator("openai!gpt-4o"))


def test_price_options_round_trip_and_are_not_part_of_the_job(server, tmp_path):
    from promptmill.generators import get_generator

    ident = "http!test-model,api_base=http://h/v1,price_in=0.5,price_out=2"
    assert get_generator(ident).to_identifier() == ident
    assert get_generator(ident).with_(temperature=0).to_identifier().startswith(ident)
    out = tmp_path / "o.jsonl"
    promptmill.run([{"question": "hi"}], f"http!test-model,api_base={server.url}", output=out)
    promptmill.run([{"question": "hi"}],
                   f"http!test-model,api_base={server.url},price_in=1,price_out=1", output=out)
