"""The `charrnn` command: Click only, thin over the Python API.

Bad option values fail in Click itself (exit 2); charrnn's own errors become a one-line
message (exit 1); an interrupted training run saves and exits 130 (SIGINT) or 143
(SIGTERM). Nothing here imports NumPy at start-up, so `charrnn --help` is instant.
"""
import sys

import click

from .errors import CharRNNError

# Defaults shown in --help; the values themselves live in charrnn.training.TrainConfig
# (kept in sync by tests/test_cli.py).
# None is "auto": chosen from the corpus size and --max-minutes (charrnn.defaults);
# AUTO_HELP says what auto picks.
TRAIN_DEFAULTS = dict(cell="gru", hidden=None, layers=None, embed=None, dropout=None,
                      forget_bias=1.0, encoding="utf-8", encoding_errors="strict",
                      seq_len=None, batch_size=None, val_frac=None, optimizer="adam", lr=3e-3,
                      lr_decay=None, anneal=0.2, grad_clip=5.0, seed=1337, eval_every=None,
                      patience=None, max_steps=0, max_epochs=None, max_minutes=5.0)
AUTO_HELP = {
    "hidden": "auto: grows with the square root of the text and of the budget; in 5 "
              "minutes 1x64 below ~9k characters, 1x128 to ~60k, 2x128 to ~300k, 2x192 to "
              "~1M, 2x256 beyond; longer budgets allow larger",
    "layers": "auto: with --hidden (see there)",
    "embed": "auto: with --hidden, 16..96; 64 for 2x256",
    "dropout": "auto: from the passes over the text the budget affords: 0 for one pass or "
               "less, 0.1 for a few (1 MB in 5 minutes), up to 0.3 for a hundred or more",
    "seq_len": "auto: 64, shorter only if the text cannot fill one window",
    "batch_size": "auto: 32, fewer for texts under ~17k characters (8 windows per epoch "
                  "at least), shrunk to fit",
    "lr_decay": "auto: 0.85, per million characters on smaller corpora",
    "val_frac": "auto: 0.1; none (no validation) when that is under 100 characters",
    "eval_every": "auto: 500, more often for small held-out parts (10 at least)",
    "patience": "auto: 10 when the budget allows more than 2 passes over the text, else 0 (off)",
    "max_epochs": "auto: no limit; 100 when the text is too short to validate",
}


def _fail(e):
    raise click.ClickException(str(e)) from None


def _run(fn, *args, **kwargs):
    """Call into the library, turning its errors into one-line messages."""
    try:
        return fn(*args, **kwargs)
    except CharRNNError as e:
        if getattr(e, "quiet", False):   # another MPI rank prints the same message
            sys.exit(1)
        _fail(e)
    except MemoryError:
        _fail("out of memory: use a smaller model (--hidden, --layers) or --batch-size")
    except OSError as e:
        _fail(f"{e.strerror or e}{': ' + str(e.filename) if e.filename else ''}")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="charrnn-fast", prog_name="charrnn")
def main():
    """Character-level RNN text generator: train on your text, then sample from it.

    \b
      charrnn train corpus.txt      # trains; writes checkpoints to charrnn-runs/
      charrnn sample --temp 0.8     # streams text from the latest run
    """
    import os
    if os.environ.get("CHARRNN_ISA"):   # a tier this CPU cannot run: one line, before any work
        from .isa import apply_env
        _run(apply_env)


def _finite(ctx, param, value):
    """FloatRange lets NaN through (every comparison with NaN is false)."""
    if value is not None and value != value:
        raise click.BadParameter("must be a number, not nan")
    return value


def _default(name):
    if TRAIN_DEFAULTS[name] is None:
        return f"({AUTO_HELP[name]})"
    return f"(default: {TRAIN_DEFAULTS[name]})"


@main.command()
@click.argument("file", required=False, type=click.Path(dir_okay=False, path_type=str))
@click.option("--cell", type=click.Choice(["lstm", "gru", "rnn"]), help=f"Recurrent cell {_default('cell')}.")
@click.option("--hidden", type=click.IntRange(min=1), help=f"Hidden units per layer {_default('hidden')}.")
@click.option("--layers", type=click.IntRange(min=1), help=f"Stacked layers {_default('layers')}.")
@click.option("--embed", type=click.IntRange(min=1), help=f"Embedding size {_default('embed')}.")
@click.option("--dropout", type=click.FloatRange(0, 1, max_open=True), callback=_finite, help=f"Dropout probability {_default('dropout')}.")
@click.option("--forget-bias", type=float, callback=_finite, help=f"LSTM forget-gate bias at init {_default('forget_bias')}.")
@click.option("--encoding", help="Text encoding: utf-8, latin-1 or any Python codec, or 'bytes' "
              f"for a byte-level model {_default('encoding')}.")
@click.option("--encoding-errors", type=click.Choice(["strict", "replace", "ignore"]),
              help="Invalid bytes in FILE: strict stops with an error naming the offset; "
              "replace puts U+FFFD, ignore leaves them out (a character cut off by the end "
              f"of the file is always dropped) {_default('encoding_errors')}.")
@click.option("--seq-len", type=click.IntRange(min=1), help=f"Characters per BPTT window {_default('seq_len')}.")
@click.option("--batch-size", type=click.IntRange(min=1), help=f"Parallel streams {_default('batch_size')}.")
@click.option("--lr", type=click.FloatRange(0, min_open=True), callback=_finite, help=f"Learning rate {_default('lr')}.")
@click.option("--lr-decay", type=click.FloatRange(0, 1, min_open=True), callback=_finite, help=f"Learning-rate factor per epoch {_default('lr_decay')}.")
@click.option("--anneal", type=click.FloatRange(0, 1, max_open=True), callback=_finite,
              help="Final fraction of a run with a budget in which the learning rate falls "
              f"linearly to 10% {_default('anneal')}.")
@click.option("--optimizer", type=click.Choice(["adam", "rmsprop"]), help=f"Optimizer {_default('optimizer')}.")
@click.option("--grad-clip", type=click.FloatRange(0), callback=_finite, help=f"Global gradient-norm limit, 0 disables {_default('grad_clip')}.")
@click.option("--val-frac", type=click.FloatRange(0, 1, min_open=True, max_open=True), callback=_finite,
              help=f"Fraction at the end of the corpus held out for validation {_default('val_frac')}.")
@click.option("--eval-every", type=click.IntRange(min=1), help=f"Steps between validations and checkpoints {_default('eval_every')}.")
@click.option("--patience", type=click.IntRange(min=0),
              help=f"Stop after this many evaluations without a better validation loss, 0: never {_default('patience')}.")
@click.option("--max-steps", type=click.IntRange(min=0), help="Stop after this many steps (0: no limit).")
@click.option("--max-epochs", type=click.FloatRange(0), callback=_finite, help=f"Stop after this many epochs, 0: no limit {_default('max_epochs')}.")
@click.option("--max-minutes", type=click.FloatRange(0), callback=_finite, help=f"Wall-clock budget in minutes, 0: none {_default('max_minutes')}.")
@click.option("--out", type=click.Path(file_okay=False, path_type=str),
              help="Run directory (default: charrnn-runs/<file>-<time>; $CHARRNN_RUNS sets the root).")
@click.option("--seed", type=int, help=f"Random seed {_default('seed')}.")
@click.option("--resume", is_flag=True, help="Continue the run in --out (default: the newest run).")
@click.option("--threads", type=click.IntRange(min=1), help="BLAS threads (default: all cores).")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar, samples or log lines.")
@click.option("--distributed/--no-distributed", default=None,
              help="Data-parallel over MPI (default: when started by mpiexec with several ranks).")
def train(file, out, resume, threads, quiet, distributed, **options):
    """Train a model on FILE (default: the bundled Tiny Shakespeare).

    Shows a progress bar; every --eval-every steps it validates, prints a sample (and
    how much of it is copied from FILE) and writes model.safetensors, best.safetensors,
    state.safetensors and metrics.jsonl to the run directory. Ctrl-C saves and tells
    you how to resume. Under `mpiexec -n N` it trains data-parallel over N ranks
    (pip install "charrnn-fast[mpi]").

    Options marked auto are chosen from the size of FILE and --max-minutes (the first
    log line says what was picked; the run's config records it); any option you pass
    wins.

    \b
    Example:
      charrnn train corpus.txt --hidden 512 --max-minutes 30 --out runs/big
      charrnn train corpus.txt --out runs/big --resume
      mpiexec -n 4 charrnn train corpus.txt --out runs/big
    """
    if distributed is not False:
        from .supervisor import supervise
        supervise()   # under mpiexec: fork, so that a rank that dies is named (no NumPy yet)
    from .training import Interrupted, train as train_fn

    options = {k: v for k, v in options.items() if v is not None}
    try:
        summary = _run(train_fn, file, out=out, resume=resume, threads=threads, quiet=quiet,
                       distributed=distributed, **options)
    except Interrupted as e:
        import signal
        for line in str(e).splitlines() if not getattr(e, "quiet", False) else ():
            click.echo(f"charrnn: {line}", err=True)
        sys.exit(130 if e.signum == signal.SIGINT else 143)
    except KeyboardInterrupt:  # a second Ctrl-C: the last checkpoint stays as it was
        click.echo("charrnn: interrupted", err=True)
        sys.exit(130)
    if quiet and summary.get("rank", 0) == 0:
        val = summary["val_loss"]
        click.echo(f"{summary['run_dir']}\tval_loss={'none' if val is None else f'{val:.4f}'}")


@main.command()
@click.argument("checkpoint", required=False, type=click.Path(path_type=str))
@click.option("--temp", "--temperature", "temperature", default=1.0, show_default=True,
              type=click.FloatRange(0), callback=_finite, help="Sampling temperature; 0 is greedy (argmax).")
@click.option("--prime", default="", help="Text to start from: the state is warmed up on it "
              "and the output starts with it.")
@click.option("--length", default=2000, show_default=True, type=click.IntRange(min=1),
              help="Characters to generate (after the prime).")
@click.option("--top-k", type=click.IntRange(min=1), help="Sample only among the K likeliest characters.")
@click.option("--top-p", type=click.FloatRange(0, 1, min_open=True), callback=_finite,
              help="Nucleus sampling: the smallest set of characters with probability >= P.")
@click.option("--seed", type=int, help="Random seed: same seed and checkpoint, same text.")
@click.option("--num-samples", default=1, show_default=True, type=click.IntRange(min=1),
              help="Generate K samples together (one batch); printed one after another.")
@click.option("--stop", multiple=True, help="End a sample when it emits this string (repeatable).")
@click.option("--latest", is_flag=True, help="Use model.safetensors, the newest weights, instead "
              "of best.safetensors (the best validation loss, the default).")
@click.option("--best", is_flag=True, hidden=True, help="Use best.safetensors (the default).")
def sample(checkpoint, temperature, prime, length, top_k, top_p, seed, num_samples, stop, latest, best):
    """Generate text from CHECKPOINT (a run directory or .safetensors file; default: the
    most recent run under charrnn-runs/). Text streams to stdout as it is made. A run
    directory gives its best.safetensors (best validation loss); --latest gives its
    newest weights.

    \b
    Example:
      charrnn sample --temp 0.8 --prime "ROMEO:" --length 500
      charrnn sample runs/big --top-p 0.9 --num-samples 4 --stop "\\n\\n"
    """
    model = _load(checkpoint, latest, best)
    out = sys.stdout
    try:
        if num_samples == 1:
            chunks = _run(model.stream, prime=prime, temperature=temperature, top_k=top_k,
                          top_p=top_p, seed=seed, length=length, stop=stop)
            it = iter(chunks)
            while True:
                chunk = _run(next, it, None)
                if chunk is None:
                    break
                out.write(chunk)
                out.flush()
            out.write("\n")
        else:
            texts = _run(model.generate, prime=prime, length=length, temperature=temperature,
                         top_k=top_k, top_p=top_p, seed=seed, num_samples=num_samples, stop=stop)
            for i, text in enumerate(texts):
                if i:
                    out.write("\n\n")
                out.write(text)
            out.write("\n")
        out.flush()
    except BrokenPipeError:
        _quiet_broken_pipe()
    except KeyboardInterrupt:
        sys.exit(130)


def _quiet_broken_pipe():
    """The reader went away (`| head`): stop quietly, as Unix tools do."""
    import os
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())   # so the interpreter's final flush is silent
    except OSError:
        pass
    sys.exit(0)


def _load(checkpoint, latest, best):
    from .model import load
    from .training import latest_run, runs_root

    if checkpoint is None:
        run = latest_run()
        if run is None:
            _fail(f"no trained model under {runs_root()}/: run `charrnn train` first, "
                  "or pass a checkpoint")
        click.echo(f"charrnn: using {run}", err=True)
        checkpoint = run
    if latest and best:
        _fail("pass --latest or --best, not both")
    return _run(load, checkpoint, best=not latest)


@main.command(name="eval")
@click.argument("checkpoint", type=click.Path(path_type=str))
@click.argument("file", type=click.Path(path_type=str))
@click.option("--latest", is_flag=True, help="Use model.safetensors, the newest weights, instead "
              "of best.safetensors (the default).")
@click.option("--best", is_flag=True, hidden=True, help="Use best.safetensors (the default).")
@click.option("--encoding", help="Encoding of FILE (default: the model's).")
@click.option("--encoding-errors", type=click.Choice(["strict", "replace", "ignore"]),
              default="strict", show_default=True, help="Invalid bytes in FILE (see train).")
def eval_(checkpoint, file, latest, best, encoding, encoding_errors):
    """Loss of a model on a text file, in nats/char and bits/char. A run directory
    gives its best.safetensors; --latest its newest weights.

    \b
    Example:
      charrnn eval charrnn-runs/tinyshakespeare-20260101-120000 other.txt
    """
    from .model import evaluate
    model = _load(checkpoint, latest, best)
    r = _run(evaluate, model, file, encoding=encoding, encoding_errors=encoding_errors)
    click.echo(f"loss {r['loss']:.4f} nats/char, {r['bpc']:.4f} bits/char over {r['chars']:,} characters")


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print a JSON object instead.")
def info(as_json):
    """Versions, ISA tier, GEMM path and threads: what a bug report needs.

    \b
    Example:
      charrnn info
      CHARRNN_ISA=avx2 charrnn info     # what a forced tier would use
    """
    from .info import format_info, info as info_fn
    d = _run(info_fn)
    if as_json:
        import json
        click.echo(json.dumps(d, indent=2))
    else:
        click.echo(format_info(d))


if __name__ == "__main__":
    # `python -m charrnn.cli` (mpiexec runs it so): the commands below import
    # charrnn.cli by name, so run that module, not this copy of it named __main__.
    from charrnn.cli import main as _main
    _main()
else:
    from .cli_view import register  # noqa: E402  (runs, plot, report: their own module)
    register(main)
    from .cli_export import export  # noqa: E402  (charrnn export)
    main.add_command(export)
