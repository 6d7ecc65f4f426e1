"""`charrnn transduce`: map texts to outputs with a seq2seq run (thin over
charrnn.training.seq2seq.Transducer)."""

import click

from charrnn.cli.common import all_cores, call, quiet_broken_pipe, text_batches

CHUNK = 256   # texts per batch and thread when reading standard input (Transducer's BATCH)

ENSEMBLE = click.option(
    "--ensemble", "ensemble", multiple=True, metavar="RUN", type=click.Path(path_type=str),
    help="Another transducer (a run or its .safetensors file; repeat for more) to decode "
    "with RUN as one: each proposes its --beam best outputs, all score them all, and the "
    "best mean log-probability wins. Train the members with different --seed values.")


NO_JOINT = click.option(
    "--no-joint", is_flag=True, help="Beam search's best as the transducer scores it, not "
    "re-ranked by the run's joint graphone model (joint.safetensors, which `charrnn train "
    "--task seq2seq` builds; it re-ranks whenever --beam is above 1; with --ensemble, RUN's).")


def load(run, ensemble=(), latest=False, joint=True):
    """The Transducer in run (with its joint model unless not joint), or with --ensemble
    runs an Ensemble of them all (re-ranked by run's joint model, if any)."""
    from charrnn.training.seq2seq import load_transducer
    tr = call(load_transducer, run, best=not latest, joint=joint)
    if not ensemble:
        return tr
    from charrnn.training.seq2seq_ensemble import Ensemble
    return call(Ensemble, [tr] + [call(load_transducer, r, best=not latest, joint=False)
                                  for r in ensemble])


def eval_seq2seq(checkpoint, file, latest, encoding, encoding_errors, beam, threads,
                 ensemble=(), no_joint=False):
    """`charrnn eval` of a transducer (or, with ensemble, of several as one)."""
    from charrnn.errors import plural
    tr = load(checkpoint, ensemble, latest, not no_joint)
    joint = getattr(tr, "joint", None) if beam > 1 else None
    r = call(tr.evaluate, file, encoding or "utf-8", encoding_errors, beam, all_cores(threads))
    loss = "-" if r["loss"] is None else f"{r['loss']:.4f}"
    click.echo(f"word error rate {r['wer']:.4f} ({r['word_errors']:,} of "
               f"{plural(r['words'], 'word')} wrong), token error rate {r['ter']:.4f} "
               f"({plural(r['token_errors'], 'edit')} over {plural(r['tokens'], 'token')}), "
               f"loss {loss} nats/token ({plural(r['pairs'], 'pair')})"
               + (f", an ensemble of {len(ensemble) + 1} models" if ensemble else "")
               + (f", beam {beam} re-ranked by the joint model (weight {joint.weight:g})"
                  if joint is not None else ""))
    if r["unknown_targets"]:
        click.echo(f"  ({plural(r['unknown_targets'], 'target')} with tokens the model does "
                   "not know: counted in the error rates, not in the loss)")


@click.command()
@click.argument("run", metavar="RUN", type=click.Path(path_type=str))
@click.argument("texts", nargs=-1, metavar="[TEXT]...")
@click.option("--beam", default=1, show_default=True, type=click.IntRange(min=1),
              help="Beam search with K hypotheses (1: greedy decoding).")
@click.option("--nbest", type=click.IntRange(min=1), help="Print the N best outputs of each "
              "text, best first, each with its log-probability (beam search of at least N; with "
              "--ensemble, the members' mean).")
@click.option("--max-len", type=click.IntRange(min=1), help="Longest output, in tokens "
              "(default: twice the longest training target, plus 2).")
@click.option("--json", "as_json", is_flag=True,
              help='One JSON object per text: {"text": ..., "output": ...}; with --nbest, '
              '{"text": ..., "outputs": [{"output": ..., "logprob": ...}, ...]}.')
@click.option("--latest", is_flag=True, help="Use model.safetensors, the newest weights, instead "
              "of best.safetensors (the best validation loss, the default).")
@click.option("--threads", type=click.IntRange(min=1), help="Batches of texts decoded at "
              "once, one per thread (default: all cores). The outputs do not change.")
@NO_JOINT
@ENSEMBLE
def transduce(run, texts, beam, nbest, max_len, as_json, latest, threads, no_joint, ensemble):
    """Map each TEXT (or, without any, each line of standard input; empty lines are
    skipped) to its output with the transducer in RUN (a run of `charrnn train --task
    seq2seq`, or its .safetensors file). One line per text: TEXT<TAB>OUTPUT; with
    --nbest, one line per output: TEXT<TAB>OUTPUT<TAB>LOG-PROBABILITY (the
    transducer's, in its order). With --beam above 1, the run's joint graphone model
    re-ranks the beam's outputs: the most accurate setting is --beam 8.

    \b
    Example:
      charrnn transduce runs/g2p hello world
      charrnn transduce runs/g2p hello world --beam 8
      charrnn transduce runs/g2p hello --beam 5 --json
      charrnn transduce runs/g2p read --nbest 3
      cut -f1 test.tsv | charrnn transduce runs/g2p
      charrnn transduce runs/g2p --ensemble runs/g2p-seed2 --beam 4 hello
    """
    import json

    tr = load(run, ensemble, latest, not no_joint)
    threads = all_cores(threads)

    def show(batch):
        if nbest:
            for text, outs in zip(batch, call(tr.nbest, batch, nbest, max(beam, nbest), max_len,
                                                   threads)):
                if as_json:
                    click.echo(json.dumps({"text": text, "outputs": [
                        {"output": o, "logprob": round(lp, 6)} for o, lp in outs]},
                        ensure_ascii=False))
                else:
                    for o, lp in outs:
                        click.echo(f"{text}\t{o}\t{lp:.4f}")
            return
        for text, out in zip(batch, call(tr.transduce, batch, beam, max_len, threads)):
            click.echo(json.dumps({"text": text, "output": out}, ensure_ascii=False)
                       if as_json else f"{text}\t{out}")
    try:
        for batch in text_batches(texts, CHUNK * threads):
            show(batch)
    except BrokenPipeError:
        quiet_broken_pipe()
