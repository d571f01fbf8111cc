"""``testing-server``: the offline OpenAI-compatible test API."""

from __future__ import annotations

import click

from promptmill.cli.app import cli

PROBABILITY = click.FloatRange(0.0, 1.0)


@cli.command("testing-server")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=8000, show_default=True)
@click.option("--latency", type=float, default=0.0, help="Seconds added to every answer.")
@click.option("--rpm", type=int, help="Requests allowed per --window.")
@click.option("--tpm", type=int, help="Tokens (prompt + max_tokens) allowed per --window.")
@click.option("--window", type=float, default=60.0, show_default=True,
              help="Rate-limit window in seconds.")
@click.option("--window-kind", type=click.Choice(["bucket", "fixed", "sliding", "quantized"]),
              default="bucket", show_default=True,
              help="How limits count: a refilling bucket (OpenAI), fixed windows on the clock, "
                   "a sliding window, or windows quantized into --quanta slices.")
@click.option("--quanta", type=click.IntRange(min=1), default=10, show_default=True,
              help="Slices of a window for --window-kind quantized.")
@click.option("--no-limit-headers", "hide_headers", is_flag=True,
              help="Send no rate-limit headers: clients learn from 429s alone.")
@click.option("--fault-429", type=PROBABILITY, default=0.0, help="Probability of a 429.")
@click.option("--fault-500", type=PROBABILITY, default=0.0, help="Probability of a 500.")
@click.option("--fault-drop", type=PROBABILITY, default=0.0,
              help="Probability of a dropped connection.")
@click.option("--fault-hang", type=PROBABILITY, default=0.0, help="Probability of never answering.")
@click.option("--fault-malformed", type=PROBABILITY, default=0.0,
              help="Probability of a broken body.")
@click.option("--fault-slow", type=PROBABILITY, default=0.0, help="Probability of a slow answer.")
@click.option("--fault-502", type=PROBABILITY, default=0.0,
              help="Probability of a proxy's 502 page.")
@click.option("--fault-503", type=PROBABILITY, default=0.0,
              help="Probability of a 503 (overloaded).")
@click.option("--fault-504", type=PROBABILITY, default=0.0,
              help="Probability of a proxy's 504 page.")
@click.option("--fault-reset", type=PROBABILITY, default=0.0,
              help="Probability of a reset connection (TCP RST).")
@click.option("--json-invalid", type=PROBABILITY, default=0.0,
              help="Probability that a structured answer (response_format) is not JSON.")
@click.option("--json-mismatch", type=PROBABILITY, default=0.0,
              help="Probability that a structured answer is JSON that breaks the schema.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the fault draws.")
@click.option("--model", "models", multiple=True, help="Model names /v1/models lists.")
@click.option("--batch-seconds", type=float, default=0.0, show_default=True,
              help="Seconds a batch spends validating, in progress and finalizing.")
@click.option("--batch-fault-line", type=PROBABILITY, default=0.0,
              help="Probability that a batch line gets a 500 in the error file.")
@click.option("--batch-fault-expire", type=PROBABILITY, default=0.0,
              help="Probability that a batch expires halfway.")
@click.option("--batch-fault-validation", type=PROBABILITY, default=0.0,
              help="Probability that a batch fails validation.")
@click.option("--batch-fault-upload", type=PROBABILITY, default=0.0,
              help="Probability that a file upload gets a 500.")
@click.option("--ignore", "ignores", multiple=True, metavar="PARAM",
              help="A request field to ignore silently, as some servers do (n, logprobs, "
                   "seed, stop, max_tokens); repeatable.")
@click.option("--strict-models", is_flag=True,
              help="Refuse model names --model does not list (404), as vLLM and OpenAI do.")
@click.option("--context-tokens", type=click.IntRange(min=1),
              help="The model's context window: longer prompts (plus max_tokens) get a 400.")
def testing_server(host: str, port: int, latency: float, rpm: int | None, tpm: int | None,
                   window: float, window_kind: str, quanta: int, hide_headers: bool,
                   fault_429: float, fault_500: float, fault_drop: float,
                   fault_hang: float, fault_malformed: float, fault_slow: float,
                   fault_502: float, fault_503: float, fault_504: float, fault_reset: float,
                   json_invalid: float, json_mismatch: float, seed: int,
                   models: tuple[str, ...], batch_seconds: float,
                   batch_fault_line: float, batch_fault_expire: float,
                   batch_fault_validation: float, batch_fault_upload: float,
                   ignores: tuple[str, ...], strict_models: bool,
                   context_tokens: int | None) -> None:
    """Serve an OpenAI-compatible test API (deterministic answers, limits, faults, the Batch
    API's /v1/files and /v1/batches) until Ctrl-C."""
    from promptmill.testing import BatchFaults, JsonFaults, testing_server_command

    try:
        testing_server_command(host, port, latency, rpm, tpm, window, fault_429, fault_500,
                               fault_drop, fault_hang, fault_malformed, fault_slow, seed,
                               models=models or ("test-model",), fault_502=fault_502,
                               fault_503=fault_503, fault_504=fault_504,
                               fault_reset=fault_reset, batch_seconds=batch_seconds,
                               window_kind=window_kind, quanta=quanta,
                               send_limit_headers=not hide_headers,
                               batch_faults=BatchFaults(
                                   line_error=batch_fault_line, expire=batch_fault_expire,
                                   fail_validation=batch_fault_validation,
                                   upload_error=batch_fault_upload, seed=seed),
                               json_faults=JsonFaults(invalid=json_invalid,
                                                      mismatch=json_mismatch, seed=seed),
                               ignores=ignores, strict_models=strict_models,
                               context_tokens=context_tokens)
    except ValueError as exc:  # options that do not fit together (probabilities over 1)
        raise click.UsageError(str(exc)) from None
    except OSError as exc:  # the port is taken
        raise click.ClickException(f"cannot serve on {host}:{port}: {exc.strerror}") from None

