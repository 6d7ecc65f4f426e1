"""`charrnn classify`: label texts with a classifier run (thin over charrnn.classifier)."""

import click

from charrnn.cli.common import call, quiet_broken_pipe, text_batches

CHUNK = 256   # texts per batch when reading standard input


@click.command()
@click.argument("run", metavar="RUN", type=click.Path(path_type=str))
@click.argument("texts", nargs=-1, metavar="[TEXT]...")
@click.option("--top", "top", default=1, show_default=True, type=click.IntRange(min=1),
              help="Show the N most probable labels of each text, best first.")
@click.option("--json", "as_json", is_flag=True,
              help='One JSON object per text: {"text": ..., "top": [{"label": ..., "p": ...}]}.')
@click.option("--latest", is_flag=True, help="Use model.safetensors, the newest weights, instead "
              "of best.safetensors (the best validation loss, the default).")
def classify(run, texts, top, as_json, latest):
    """Label each TEXT (or, without any, each line of standard input; empty lines are
    skipped) with the classifier in RUN (a run of `charrnn train --task classify`, or
    its .safetensors file). One line per text: LABEL<TAB>PROBABILITY, repeated for
    --top N, then <TAB>TEXT.

    \b
    Example:
      charrnn classify runs/names Müller Rossi --top 3
      cut -f2 test.tsv | charrnn classify runs/names --json
    """
    import json
    from charrnn.classifier import load_classifier

    clf = call(load_classifier, run, best=not latest)
    top = min(top, len(clf.labels))

    def show(batch):
        for text, best in zip(batch, call(clf.top, batch, top)):
            if as_json:
                line = json.dumps({"text": text, "top": [{"label": l, "p": round(p, 6)}
                                                         for l, p in best]}, ensure_ascii=False)
            else:
                line = "\t".join(f"{l}\t{p:.4f}" for l, p in best) + "\t" + text
            click.echo(line)
    try:
        for batch in text_batches(texts, CHUNK):
            show(batch)
    except BrokenPipeError:
        quiet_broken_pipe()
