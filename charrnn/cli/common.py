"""What every command shares: library errors as one-line messages, loading a model,
option checks. Click only; nothing heavy is imported here."""
import sys

import click

from charrnn.errors import CharRNNError


def fail(e):
    raise click.ClickException(str(e)) from None


def call(fn, *args, **kwargs):
    """Call into the library, turning its errors into one-line messages."""
    try:
        return fn(*args, **kwargs)
    except CharRNNError as e:
        if getattr(e, "quiet", False):   # another MPI rank prints the same message
            sys.exit(1)
        fail(e)
    except MemoryError:
        fail("out of memory: use a smaller model (--hidden, --layers) or --batch-size")
    except OSError as e:
        fail(f"{e.strerror or e}{': ' + str(e.filename) if e.filename else ''}")


def all_cores(threads):
    """A --threads option's value, or every core when it was not given."""
    import os
    return threads or os.cpu_count() or 1


def finite(ctx, param, value):
    """FloatRange lets NaN through (every comparison with NaN is false), and inf where
    the range is open above: a float option takes finite numbers only."""
    if value is not None and (value != value or value in (float("inf"), float("-inf"))):
        raise click.BadParameter(f"must be a finite number, not {value}")
    return value


def quiet_broken_pipe():
    """The reader went away (`| head`): stop quietly, as Unix tools do."""
    import os
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())   # so the interpreter's final flush is silent
    except OSError:
        pass
    sys.exit(0)


def load_model(checkpoint, latest, best):
    from charrnn.model import load
    from charrnn.io.rundir import latest_run, runs_root

    if checkpoint is None:
        run = latest_run()
        if run is None:
            fail(f"no trained model under {runs_root()}/: run `charrnn train` first, "
                  "or pass a checkpoint")
        click.echo(f"charrnn: using {run}", err=True)
        checkpoint = run
    if latest and best:
        fail("pass --latest or --best, not both")
    return call(load, checkpoint, best=not latest)


def text_batches(texts, chunk):
    """The TEXT arguments as one batch, or else standard input's non-empty lines in
    batches of `chunk` (`charrnn classify`, `charrnn transduce`). An empty TEXT is a
    usage error naming it."""
    if texts:
        empty = [i + 1 for i, t in enumerate(texts) if not t]
        if empty:
            raise click.BadParameter(f"TEXT {empty[0]} is empty", param_hint="TEXT")
        yield list(texts)
        return
    batch = []
    for line in sys.stdin:
        line = line.rstrip("\r\n")
        if line:
            batch.append(line)
        if len(batch) == chunk:
            yield batch
            batch = []
    if batch:
        yield batch
