"""`charrnn serve`: the OpenAI-compatible HTTP server (thin over charrnn.serve)."""
import sys

import click

from charrnn.cli.common import call, fail
from charrnn.serve.protocol import Limits

LOCAL = ("127.0.0.1", "localhost", "::1")
_L = Limits()


@click.command()
@click.argument("runs", nargs=-1, type=click.Path(exists=True, path_type=str))
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on. Anything but 127.0.0.1 / localhost lets other "
              "machines in: pair it with --api-key.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535))
@click.option("--api-key", envvar="CHARRNN_API_KEY", show_envvar=True,
              help="Require 'Authorization: Bearer KEY' on /v1/* (the playground asks for it).")
@click.option("--latest", is_flag=True, help="Serve each run's model.safetensors (the newest "
              "weights) instead of best.safetensors.")
@click.option("--watch", is_flag=True, help="Reload a run when training writes a newer "
              "checkpoint (requests in flight finish on the old weights).")
@click.option("--watch-interval", default=2.0, show_default=True,
              type=click.FloatRange(0.1, 3600), help="Seconds between checks for --watch.")
@click.option("--unknown", type=click.Choice(["error", "skip"]), default="error",
              show_default=True, help="Prompt characters the model never saw: a 400 error "
              "naming them, or drop them.")
@click.option("--max-batch", default=_L.max_batch, show_default=True,
              type=click.IntRange(1, 4096), help="Generations stepped together per model.")
@click.option("--max-queue", default=_L.max_queue, show_default=True,
              type=click.IntRange(0), help="Generations waiting for a free row; beyond, 429.")
@click.option("--max-tokens", default=_L.max_tokens, show_default=True,
              type=click.IntRange(1), help="Largest max_tokens (characters) a request may ask.")
@click.option("--max-prompt", default=_L.max_prompt, show_default=True,
              type=click.IntRange(1), help="Longest prompt, in characters.")
@click.option("--max-n", default=_L.max_n, show_default=True, type=click.IntRange(1, 1024),
              help="Largest n (choices per prompt).")
@click.option("--max-body", default=_L.max_body, show_default=True, type=click.IntRange(1),
              help="Largest request body, in bytes.")
@click.option("--no-batching", is_flag=True, help="One generation at a time (to compare).")
@click.option("--log-level", type=click.Choice(["critical", "error", "warning", "info",
                                                "debug"]), default="info", show_default=True)
def serve(runs, host, port, api_key, latest, watch, watch_interval, unknown, max_batch,
          max_queue, max_tokens, max_prompt, max_n, max_body, no_batching, log_level):
    """Serve trained models over HTTP: OpenAI's /v1/completions (streaming too) for
    language models, /v1/transduce for transducers (--task seq2seq runs), /v1/classify
    for classifiers (--task classify), a playground page at /, /health. RUNS: run
    directories or .safetensors files of any kind (default: the most recent run);
    several runs are several models, chosen by the request's "model" (the run's
    directory name). Stop with Ctrl-C: streams end cleanly, exit 0.

    \b
    Example:
      charrnn serve charrnn-runs/shakespeare-20260101-120000 --watch
      curl localhost:8000/v1/completions -H 'Content-Type: application/json' \\
           -d '{"prompt": "ROMEO:", "max_tokens": 200, "seed": 1}'
      charrnn serve runs/g2p
      curl localhost:8000/v1/transduce -H 'Content-Type: application/json' \\
           -d '{"input": ["hello", "world"], "beam": 8}'
    """
    try:
        import uvicorn
        from charrnn.serve.server import app
    except ImportError as e:
        fail(f"charrnn serve needs uvicorn and Starlette ({e.name} is missing): "
             'pip install "charrnn-fast[serve]"')
    from charrnn.io.rundir import latest_run, runs_root
    from charrnn.serve.models import ServedModel, unique_names

    if not runs:
        run = latest_run()
        if run is None:
            fail(f"no trained model under {runs_root()}/: run `charrnn train` first, "
                 "or pass a run")
        runs = (str(run),)
    models = [call(ServedModel.from_source, r, name=n, latest=latest)
              for r, n in zip(runs, unique_names(runs))]
    limits = Limits(max_body=max_body, max_prompt=max_prompt, max_tokens=max_tokens,
                    max_n=max_n, max_batch=max_batch, max_queue=max_queue)
    asgi = call(app, models, api_key=api_key, limits=limits, batching=not no_batching,
                unknown=unknown, watch=watch_interval if watch else 0.0)
    base = f"http://{'[' + host + ']' if ':' in host else host}:{port}"
    what = {"lm": "completions", "seq2seq": "transduce", "classifier": "classify"}
    for m in models:
        click.echo(f"charrnn: model {m.name!r} from {m.checkpoint()}: POST "
                   f"{base}/v1/{what[m.kind]}", err=True)
    click.echo(f"charrnn: playground {base}/   API {base}/v1 (OpenAI completions; "
               "transduce, classify)" + ("   key required" if api_key else ""), err=True)
    if host not in LOCAL:
        click.echo(f"charrnn: note: listening on {host}, so other machines can connect"
                   + ("" if api_key else "; anyone who can reach it can use it: consider "
                      "--api-key"), err=True)
    server = _server(uvicorn, uvicorn.Config(asgi, host=host, port=port, log_level=log_level,
                                             timeout_graceful_shutdown=5, lifespan="on"),
                     asgi.state.charrnn.scheduler)
    server.run()
    if not server.started:
        sys.exit(1)     # uvicorn said why (the port is taken, ...)
    click.echo("charrnn: stopped", err=True)


def _server(uvicorn, config, scheduler):
    """uvicorn's server, but SIGTERM / Ctrl-C end every generation at once (the streams
    get their last chunk and [DONE]), and the process then exits 0 instead of re-raising
    the signal after the shutdown. A second Ctrl-C stops without waiting."""

    class Server(uvicorn.Server):
        def handle_exit(self, sig, frame):
            if self.should_exit:
                self.force_exit = True
            self.should_exit = True
            scheduler.finish_all()

    return Server(config)
