"""The `charrnn` command: Click only, thin over the Python API, one module per command
group (train; sample and eval; classify; transduce; runs, plot and report; export; info; serve).

Bad option values fail in Click itself (exit 2); charrnn's own errors become a one-line
message (exit 1); an interrupted training run saves and exits 130 (SIGINT) or 143
(SIGTERM). Nothing here imports NumPy at start-up, so `charrnn --help` is instant.
"""
import sys

import click

from charrnn.cli import classify, export, generate, info, serve, train, transduce, view
from charrnn.cli.common import call


class Group(click.Group):
    """Ctrl-C ends every command with exit status 130 (128 + SIGINT), as shells
    expect, not Click's "Aborted!" and 1; `charrnn train` handles it itself (it saves
    and says how to resume)."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:
            try:
                click.echo("charrnn: interrupted", err=True)
            except OSError:
                pass
            sys.exit(130)


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="charrnn-fast", prog_name="charrnn")
def main():
    """Character-level RNN text generator: train on your text, then sample from it.

    \b
      charrnn train corpus.txt      # trains; writes checkpoints to charrnn-runs/
      charrnn sample --temp 0.8     # streams text from the latest run
    """
    import os
    from charrnn.nn import heap
    heap.keep_freed_memory()   # the process is ours: no page faults for each step's arrays
    if os.environ.get("CHARRNN_ISA"):   # a tier this CPU cannot run: one line, before any work
        from charrnn.nn.isa import apply_env
        call(apply_env)



for command in (train.train, generate.sample, generate.eval_, classify.classify,
                transduce.transduce, view.runs, view.plot,
                view.report, export.export, info.info, serve.serve):
    main.add_command(command)
