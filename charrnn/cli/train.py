"""`charrnn train`: Click only, thin over charrnn.training.loop.train.

Each option's help and default come from charrnn.training.options.TrainConfig (the one
place they live); Click checks types and ranges before any work starts.
"""
import sys

import click

from charrnn.cli.common import call, finite, quiet_broken_pipe
from charrnn.training.options import (ATTENTIONS, CELLS, DOCS, ENCODING_ERRORS, OPTIMIZERS, POOLS,
                                      PRECISIONS, TARGET_TOKENS, TASKS, described)


@click.command()
@click.argument("files", nargs=-1, metavar="[FILE]...", type=click.Path(path_type=str))
@click.option("--task", type=click.Choice(TASKS), help=described("task"))
@click.option("--target-tokens", type=click.Choice(TARGET_TOKENS), help=described("target_tokens"))
@click.option("--attention", type=click.Choice(ATTENTIONS), help=described("attention"))
@click.option("--decoder", type=click.IntRange(min=0), help=described("decoder"))
@click.option("--label-smoothing", type=click.FloatRange(0, 1, max_open=True), callback=finite,
              help=described("label_smoothing"))
@click.option("--ema", type=click.FloatRange(0, 1, max_open=True), callback=finite,
              help=described("ema"))
@click.option("--pool", type=click.Choice(POOLS), help=described("pool"))
@click.option("--cell", type=click.Choice(CELLS), help=described("cell"))
@click.option("--hidden", type=click.IntRange(min=1), help=described("hidden"))
@click.option("--layers", type=click.IntRange(min=1), help=described("layers"))
@click.option("--embed", type=click.IntRange(min=1), help=described("embed"))
@click.option("--dropout", type=click.FloatRange(0, 1, max_open=True), callback=finite, help=described("dropout"))
@click.option("--forget-bias", type=float, callback=finite, help=described("forget_bias"))
@click.option("--encoding", help=described("encoding"))
@click.option("--encoding-errors", type=click.Choice(ENCODING_ERRORS), help=described("encoding_errors"))
@click.option("--docs", type=click.Choice(DOCS), help=described("docs"))
@click.option("--seq-len", type=click.IntRange(min=1), help=described("seq_len"))
@click.option("--batch-size", type=click.IntRange(min=1), help=described("batch_size"))
@click.option("--lr", type=click.FloatRange(0, min_open=True), callback=finite, help=described("lr"))
@click.option("--lr-decay", type=click.FloatRange(0, 1, min_open=True), callback=finite, help=described("lr_decay"))
@click.option("--anneal", type=click.FloatRange(0, 1, max_open=True), callback=finite,
              help=described("anneal"))
@click.option("--optimizer", type=click.Choice(OPTIMIZERS), help=described("optimizer"))
@click.option("--grad-clip", type=click.FloatRange(0), callback=finite, help=described("grad_clip"))
@click.option("--val-frac", type=click.FloatRange(0, 1, min_open=True, max_open=True), callback=finite,
              help=described("val_frac"))
@click.option("--eval-every", type=click.IntRange(min=1), help=described("eval_every"))
@click.option("--patience", type=click.IntRange(min=0),
              help=described("patience"))
@click.option("--max-steps", type=click.IntRange(min=0), help=described("max_steps"))
@click.option("--max-epochs", type=click.FloatRange(0), callback=finite, help=described("max_epochs"))
@click.option("--max-minutes", type=click.FloatRange(0), callback=finite, help=described("max_minutes"))
@click.option("--out", type=click.Path(file_okay=False, path_type=str),
              help="Run directory (default: charrnn-runs/<file>-<time>; $CHARRNN_RUNS sets the root).")
@click.option("--init", metavar="RUN", type=click.Path(path_type=str),
              help="Fine-tune: start from the weights of another run (its directory: "
                   "best.safetensors, else model.safetensors; or a .safetensors file), keeping "
                   "its model and adding FILE's new characters to its vocabulary.")
@click.option("--seed", type=int, help=described("seed"))
@click.option("--precision", type=click.Choice(PRECISIONS), help=described("precision"))
@click.option("--resume", is_flag=True, help="Continue the run in --out (default: the newest run).")
@click.option("--threads", type=click.IntRange(min=1), help="BLAS threads (default: all cores).")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar, samples or log lines.")
@click.option("--distributed/--no-distributed", default=None,
              help="Data-parallel over MPI (default: when started by mpiexec with several ranks).")
def train(files, out, resume, init, threads, quiet, distributed, **options):
    """Train a model on FILE (default: the bundled Tiny Shakespeare), or on several:
    a folder (its files, recursively, in sorted path order, hidden ones skipped),
    several paths, or a quoted pattern ('notes/*.md'), joined into one text with a
    newline between files. --docs lines or files reads the text as documents (one per
    line, or per file), which `charrnn sample --items` then samples whole.

    Shows a progress bar; every --eval-every steps it validates, prints a sample (and
    how much of it is copied from FILE) and writes model.safetensors, best.safetensors,
    state.safetensors and metrics.jsonl to the run directory. Ctrl-C saves and tells
    you how to resume. Under `mpiexec -n N` it trains data-parallel over N ranks
    (pip install "charrnn-fast[mpi]").

    --task classify trains a classifier instead, from a TSV file of label<TAB>text
    lines (whole pairs held out for validation, stratified by label); use it with
    `charrnn classify RUN TEXT` and `charrnn eval RUN test.tsv`. --task seq2seq trains
    an encoder-decoder with attention from source<TAB>target lines (--target-tokens
    space for targets such as phonemes); use it with `charrnn transduce RUN TEXT` and
    `charrnn eval RUN test.tsv`.

    Options marked auto are chosen from the size of FILE and --max-minutes (the first
    log line says what was picked; the run's config records it); any option you pass
    wins.

    \b
    Example:
      charrnn train corpus.txt --hidden 512 --max-minutes 30 --out runs/big
      charrnn train corpus.txt --out runs/big --resume
      charrnn train small.txt --init runs/big --out runs/small
      mpiexec -n 4 charrnn train corpus.txt --out runs/big
      charrnn train names.txt --docs lines --out runs/names
      charrnn train notes/ --docs files
      charrnn train names.tsv --task classify --out runs/names
      charrnn train cmudict.tsv --task seq2seq --target-tokens space --out runs/g2p
    """
    if distributed is not False:
        from charrnn.training.rank_supervisor import supervise
        supervise()   # under mpiexec: fork, so that a rank that dies is named (no NumPy yet)
    from charrnn.training.loop import Interrupted, train as train_fn

    options = {k: v for k, v in options.items() if v is not None}
    try:
        corpus = None if not files else files[0] if len(files) == 1 else list(files)
        summary = call(train_fn, corpus, out=out, resume=resume, init=init, threads=threads,
                       quiet=quiet, distributed=distributed, **options)
    except Interrupted as e:
        import signal
        signal.signal(signal.SIGINT, signal.SIG_IGN)   # saved and stopping: say so in full
        for line in str(e).splitlines() if not getattr(e, "quiet", False) else ():
            click.echo(f"charrnn: {line}", err=True)
        sys.exit(130 if e.signum == signal.SIGINT else 143)
    except KeyboardInterrupt:  # a second Ctrl-C: the last checkpoint stays as it was
        click.echo("charrnn: interrupted", err=True)
        sys.exit(130)
    if quiet and summary.get("rank", 0) == 0:
        val = summary["val_loss"]
        acc, ter = summary.get("val_accuracy"), summary.get("val_ter")
        try:
            click.echo(f"{summary['run_dir']}\tval_loss={'none' if val is None else f'{val:.4f}'}"
                       + ("" if acc is None else f"\tval_accuracy={acc:.4f}")
                       + ("" if ter is None else f"\tval_ter={ter:.4f}"))
        except BrokenPipeError:   # the run is saved; the reader went away
            quiet_broken_pipe()
