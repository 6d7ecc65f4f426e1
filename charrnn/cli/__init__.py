"""The `charrnn` command: Click only, thin over the Python API, one module per command
group (train; sample and eval; runs, plot and report; export; info).

Bad option values fail in Click itself (exit 2); charrnn's own errors become a one-line
message (exit 1); an interrupted training run saves and exits 130 (SIGINT) or 143
(SIGTERM). Nothing here imports NumPy at start-up, so `charrnn --help` is instant.
"""
import click

from charrnn.cli import export, generate, info, train, view
from charrnn.cli.common import call


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
        from charrnn.nn.isa import apply_env
        call(apply_env)



for command in (train.train, generate.sample, generate.eval_, view.runs, view.plot,
                view.report, export.export, info.info):
    main.add_command(command)
