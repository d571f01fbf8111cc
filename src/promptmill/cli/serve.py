"""``serve``: start, list and stop local OpenAI-compatible servers (vLLM, llama.cpp)."""

from __future__ import annotations

import click

from promptmill.cli.app import cli


@cli.command()
@click.argument("model", required=False)
@click.option("--port", type=click.IntRange(1, 65535), default=8000, show_default=True)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--engine", type=click.Choice(["auto", "vllm", "llamacpp"]), default="auto",
              show_default=True, help="auto: llama.cpp for a .gguf file (or without vLLM), "
              "else vLLM.")
@click.option("--tensor-parallel-size", type=click.IntRange(min=1), help="GPUs (vLLM).")
@click.option("--gpu-memory-utilization", type=click.FloatRange(0, 1, min_open=True),
              help="Share of GPU memory vLLM may take (on vLLM's CPU build: of RAM).")
@click.option("--max-model-len", type=click.IntRange(min=1), help="Context length.")
@click.option("--stop-token", "stop_tokens", multiple=True, metavar="TEXT",
              help="Stop at TEXT: put into the printed identifier, for every job using it.")
@click.option("--engine-arg", "engine_args", multiple=True, metavar="ARG",
              help="Passed to the engine's command line as is (repeat for each word).")
@click.option("--timeout", type=click.FloatRange(min=1), default=900, show_default=True,
              help="Seconds to wait for the server to answer.")
@click.option("--list", "list_servers", is_flag=True, help="Show servers started this way.")
@click.option("--stop", "stop", is_flag=False, flag_value="all", default=None, metavar="[PORT]",
              help="Stop the server on PORT (all servers started this way without one).")
def serve(model: str | None, port: int, host: str, engine: str,
          tensor_parallel_size: int | None, gpu_memory_utilization: float | None,
          max_model_len: int | None, stop_tokens: tuple[str, ...],
          engine_args: tuple[str, ...], timeout: float, list_servers: bool,
          stop: str | None) -> None:
    """Serve MODEL (a Hugging Face model or folder; a .gguf file) in the background.

    Waits until the server answers, then prints the http! identifier to run jobs against
    it. Without MODEL, serves the embedded SmolLM2 model with llama.cpp.
    """
    from promptmill import serve as serving
    from promptmill.errors import UsageError

    if list_servers:
        rows = serving.list_servers()
        if not rows:
            click.echo("no servers started by promptmill", err=True)
        for record, alive in rows:
            state = "running" if alive else "exited"
            click.echo(f"{record.port}\t{state}\tpid {record.pid}\t{record.engine}\t"
                       f"{record.identifier}\tlog {record.log}")
        return
    if stop is not None:
        if stop != "all" and not stop.isdigit():
            raise UsageError(f"--stop {stop}: give a port number, or nothing to stop them all")
        stopped = serving.stop_server(None if stop == "all" else int(stop))
        for record in stopped:
            click.echo(f"stopped {record.engine} server on port {record.port} "
                       f"(pid {record.pid})", err=True)
        if not stopped:
            click.echo("no servers started by promptmill", err=True)
        return
    record = serving.start_server(
        model, engine=engine, host=host, port=port, tensor_parallel_size=tensor_parallel_size,
        gpu_memory_utilization=gpu_memory_utilization, max_model_len=max_model_len,
        stop=stop_tokens, engine_args=engine_args, timeout=timeout)
    click.echo(f"serving {record.model} with {record.engine} on {record.api_base} (pid "
               f"{record.pid}, log {record.log}); stop it with: promptmill serve --stop "
               f"{record.port}", err=True)
    click.echo(record.identifier)
