"""`charrnn runs`, `charrnn plot` and `charrnn report`: look at what runs learned.

Click only, thin over charrnn.inspect.runs, charrnn.inspect.plot and charrnn.inspect.report (imported inside
the commands, so `charrnn --help` stays instant).
"""
import click

from charrnn.cli.common import call, fail


@click.command()
@click.argument("root", required=False, type=click.Path(file_okay=False, path_type=str))
@click.option("--json", "as_json", is_flag=True, help="One JSON object per run (a list), for scripts.")
def runs(root, as_json):
    """List the runs under ROOT (default: charrnn-runs/, or $CHARRNN_RUNS): corpus,
    model, steps, epochs, best validation loss, state (running, finished,
    interrupted) and when each was last written.

    \b
    Example:
      charrnn runs
      charrnn runs experiments/ --json | jq '.[] | select(.state == "finished")'
    """
    import json
    from charrnn.inspect.runs import format_table, runs as list_runs
    from charrnn.io.rundir import runs_root

    where = root if root is not None else str(runs_root())
    found = call(list_runs, root)
    if as_json:
        click.echo(json.dumps([r.to_json() for r in found], indent=1))
        return
    if not found:
        click.echo(f"no runs under {where}/ yet: start one with `charrnn train`", err=True)
        return
    click.echo(format_table(found))


@click.command()
@click.argument("run_dirs", metavar="RUN...", nargs=-1, required=True,
                type=click.Path(exists=True, file_okay=False, path_type=str))
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=str),
              help="Write a .png or .svg (needs matplotlib) instead of drawing in the terminal.")
@click.option("--x", "axis", type=click.Choice(["steps", "chars"]), default="steps", show_default=True,
              help="x axis: steps, or characters seen (to compare runs of different batch shapes).")
@click.option("--follow", "-f", is_flag=True, help="Redraw in the terminal while the runs train.")
@click.option("--interval", default=2.0, show_default=True, type=click.FloatRange(0.1),
              help="Seconds between redraws with --follow.")
def plot(run_dirs, output, axis, follow, interval):
    """Plot training and validation loss and the learning rate of one or more runs
    (overlaid). With -o, a PNG or SVG file (matplotlib); without, a plot drawn in
    the terminal (plotext). Both: pip install "charrnn-fast[plot]".

    \b
    Example:
      charrnn plot charrnn-runs/tinyshakespeare-* -o loss.png
      charrnn plot charrnn-runs/tinyshakespeare-20260101-120000 --follow
    """
    from charrnn.inspect import plot as P

    if output is not None and not output.lower().endswith((".png", ".svg")):
        raise click.BadParameter("the file name must end in .png or .svg", param_hint="-o")
    if follow:
        try:
            call(P.follow, list(run_dirs), axis=axis, interval=interval, out=output)
        except KeyboardInterrupt:
            pass
        return
    series = [call(P.load_series, d) for d in run_dirs]
    if output is not None:
        if not P.have_matplotlib() and P.have_plotext():
            # Draw what we can, but a file was asked for and is not written: exit 1.
            click.echo(call(P.terminal_plot, series, axis))
            fail(f"matplotlib is not installed, so {output} was not written "
                  f"({P.EXTRA}); the plot above is drawn in the terminal instead")
        path = call(P.save_plot, series, output, axis)
        click.echo(f"charrnn: wrote {path}", err=True)
        return
    click.echo(call(P.terminal_plot, series, axis))


@click.command()
@click.argument("run_dir", metavar="RUN", type=click.Path(exists=True, file_okay=False, path_type=str))
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=str),
              help="HTML file to write (default: RUN/report.html).")
@click.option("--text", "text_file", type=click.Path(exists=True, dir_okay=False, path_type=str),
              help="Probe the model on this text file instead of the run's held-out text.")
@click.option("--latest", is_flag=True, help="Use model.safetensors rather than best.safetensors.")
@click.option("--chars", default=1500, show_default=True, type=click.IntRange(50, 20000),
              help="Characters of the passage coloured by probability.")
def report(run_dir, output, text_file, latest, chars):
    """Write one self-contained HTML page about a run: its options, loss curves, the
    samples written at each evaluation, a held-out passage coloured by the model's
    probability of each character (top 5 on hover) and hidden units that track the
    text. No network needed: open it from disk.

    \b
    Example:
      charrnn report charrnn-runs/tinyshakespeare-20260101-120000 -o report.html
    """
    from charrnn.inspect.report import write_report

    text = None
    if text_file is not None:
        try:
            with open(text_file, encoding="utf-8", errors="strict") as f:
                text = f.read()
        except (OSError, UnicodeDecodeError) as e:
            fail(f"cannot read {text_file}: {e}")
    path = call(write_report, run_dir, output, text=text, best=not latest, passage_chars=chars)
    click.echo(str(path))
