"""`charrnn sample` and `charrnn eval`: use a trained model (thin over charrnn.model)."""
import sys

import click

from charrnn.cli.common import call, finite, load_model, quiet_broken_pipe
from charrnn.cli.transduce import ENSEMBLE, NO_JOINT, eval_seq2seq
from charrnn.nn.precision import SAMPLE_DEFAULT, SAMPLE_HELP, SAMPLE_PRECISIONS


def unescape(text):
    """--prime and --stop as a shell passes them: "\\n" is a newline (Python's string
    escapes; any other character, non-ASCII too, stands for itself)."""
    import codecs
    import warnings
    try:
        with warnings.catch_warnings():   # an unknown escape ("\\q") stays as it is
            warnings.simplefilter("ignore", DeprecationWarning)
            return codecs.decode(text.encode("latin-1", "backslashreplace"), "unicode_escape")
    except UnicodeDecodeError as e:
        raise click.BadParameter(f"{text!r}: {e.reason}; write a backslash as \\\\") from None


def temperatures(ctx, param, value):
    """--temp 0.8, or a sheet --temp 0.2,0.5,1.0: each a finite number >= 0."""
    out = []
    for part in value.split(","):
        try:
            t = float(part)
        except ValueError:
            raise click.BadParameter(f"{part.strip()!r} is not a number (give a temperature "
                                     f"such as 0.8, or a list such as 0.2,0.5,1.0)") from None
        if not (0 <= t < float("inf")):
            raise click.BadParameter(f"{part.strip()!r}: each temperature must be a finite "
                                     f"number >= 0")
        out.append(t)
    return out[0] if len(out) == 1 else out


def read_prime_file(ctx, param, value):
    if value is None:
        return None
    try:
        with open(value, encoding="utf-8", errors="strict", newline="") as f:
            text = f.read()
    except UnicodeDecodeError as e:
        raise click.BadParameter(f"{value} is not UTF-8 text ({e.reason} at byte "
                                 f"{e.start})") from None
    except OSError as e:
        raise click.BadParameter(f"{value}: {e.strerror or e}") from None
    if not text:
        raise click.BadParameter(f"{value} is empty; a prime file needs at least one "
                                 f"character")
    return text


@click.command()
@click.argument("checkpoint", required=False, type=click.Path(path_type=str))
@click.option("--temp", "--temperature", "temperature", default="1.0", show_default=True,
              callback=temperatures, help="Sampling temperature; 0 is greedy (argmax). A "
              "comma-separated list (--temp 0.2,0.5,1.0) prints one labelled sample per "
              "temperature, all made as one batch.")
@click.option("--prime", default="", callback=lambda c, p, v: unescape(v),
              help="Text to start from: the state is warmed up on it and the output starts "
              "with it. Backslash escapes are read: \\n, \\t, \\\\ (a backslash), \\u00e9.")
@click.option("--prime-file", type=click.Path(dir_okay=False, path_type=str),
              callback=read_prime_file, help="Read the prime from FILE (UTF-8, taken as it "
              "is: no escapes), instead of --prime.")
@click.option("--length", default=2000, show_default=True, type=click.IntRange(min=1),
              help="Characters to generate (after the prime).")
@click.option("--top-k", type=click.IntRange(min=1), help="Sample only among the K likeliest characters.")
@click.option("--top-p", type=click.FloatRange(0, 1, min_open=True), callback=finite,
              help="Nucleus sampling: the smallest set of characters with probability >= P.")
@click.option("--seed", type=int, help="Random seed: same seed and checkpoint, same text.")
@click.option("--precision", type=click.Choice(SAMPLE_PRECISIONS), default=SAMPLE_DEFAULT,
              show_default=True, help=SAMPLE_HELP)
@click.option("--num-samples", default=1, show_default=True, type=click.IntRange(min=1),
              help="Generate K samples together (one batch), each under a header line "
              "'--- sample J of K ---': the first streams as it is made, the others follow "
              "(kept in a temporary file meanwhile, not in memory). With --beam: print the "
              "K best beams (K <= --beam).")
@click.option("--stop", multiple=True, callback=lambda c, p, v: tuple(unescape(s) for s in v),
              help="End a sample when it emits this string (repeatable; backslash escapes "
              "as for --prime: --stop '\\n\\n' ends at a blank line).")
@click.option("--beam", type=click.IntRange(min=1), help="Beam search with K beams: the most "
              "likely continuation instead of a random one (deterministic; --temp, --top-k, "
              "--top-p and --seed do not apply). 1 is greedy.")
@click.option("--no-repeat", type=click.IntRange(min=2), help="Never complete a character "
              "N-gram that the sample already generated (N ~ 10-40 stops loops).")
@click.option("--verbose", "-v", is_flag=True, help="After each sample, report on stderr the "
              "longest repeated substring (and, with --beam, the log-probability).")
@click.option("--color", "--colour", "color", is_flag=True, help="Colour each generated "
              "character by the model's probability of it (ANSI; red = unlikely).")
@click.option("--interactive", "-i", is_flag=True, help="A prompt that keeps the model "
              "loaded: type a start, read the continuation; :help lists the commands.")
@click.option("--items", type=click.IntRange(min=1), help="Sample N whole documents of a "
              "model trained with --docs, made as one batch: one per line (each under a "
              "header '--- item J of N ---' when one holds a line break). --length caps "
              "each: stderr counts those it cut before their end (not well-formed).")
@click.option("--novel", is_flag=True, help="With --items: drop items found verbatim among "
              "the training documents and draw again, up to 10 x N draws (stderr says how "
              "many were dropped).")
@click.option("--latest", is_flag=True, help="Use model.safetensors, the newest weights, instead "
              "of best.safetensors (the best validation loss, the default).")
@click.option("--best", is_flag=True, hidden=True, help="Use best.safetensors (the default).")
def sample(checkpoint, temperature, prime, prime_file, length, top_k, top_p, seed, precision,
           num_samples, stop, beam, no_repeat, verbose, color, interactive, items, novel,
           latest, best):
    """Generate text from CHECKPOINT (a run directory or .safetensors file; default: the
    most recent run under charrnn-runs/). Text streams to stdout as it is made. A run
    directory gives its best.safetensors (best validation loss); --latest gives its
    newest weights.

    \b
    Example:
      charrnn sample --temp 0.8 --prime "ROMEO:" --length 500
      charrnn sample runs/big --top-p 0.9 --num-samples 4 --stop "\\n\\n"
      charrnn sample --beam 8 --num-samples 3 --no-repeat 20 --length 200
      charrnn sample --temp 0.2,0.5,1.0 --prime-file start.txt
      charrnn sample -i
      charrnn sample runs/names --items 20 --novel --temp 0.8
    """
    sheet = isinstance(temperature, list)
    if novel and items is None:
        raise click.UsageError("--novel drops sampled items that copy a training document: "
                               "give --items N")
    if items is not None:
        given = [name for name, on in (("--prime", prime), ("--prime-file", prime_file),
                 ("--num-samples", num_samples != 1), ("--stop", stop),
                 ("--beam", beam is not None), ("--color", color), ("-i", interactive),
                 ("a --temp list", sheet), ("--verbose", verbose)) if on]
        if given:
            raise click.UsageError(f"--items samples whole documents, each from its start: "
                                   f"{', '.join(given)} do not apply to it")
        return _items(load_model(checkpoint, latest, best), items, novel, length,
                      temperature, top_k, top_p, seed, no_repeat, precision)
    if prime_file is not None:
        if prime:
            raise click.UsageError("give --prime or --prime-file, not both")
        prime = prime_file
    if beam is not None:
        if num_samples > beam:
            raise click.BadParameter(f"{num_samples} is more than the {beam} beams kept "
                                     f"(--beam {num_samples} or more)",
                                     param_hint="'--num-samples'")
        if sheet or top_k or top_p or stop:
            raise click.UsageError("--beam is deterministic: --temp lists, --top-k, --top-p "
                                   "and --stop do not apply to it")
    if sheet and num_samples != 1:
        raise click.UsageError("a --temp list makes one sample per temperature; leave out "
                               "--num-samples")
    if interactive:
        from charrnn.cli.repl import repl
        model = load_model(checkpoint, latest, best)
        repl(model, dict(temperature=temperature[0] if sheet else temperature, length=length,
                         top_k=top_k, top_p=top_p, seed=seed, beam=beam,
                         no_repeat=no_repeat, stop=stop, precision=precision), color=color,
             prime=prime)
        return
    model = load_model(checkpoint, latest, best)
    if model.cfg.end_marker:
        click.echo("charrnn: this model was trained on documents, each ended by U+0003 in "
                   "this text: --items N samples whole ones", err=True)
    out = sys.stdout
    report = _Report(model, verbose, color)
    try:
        if beam is not None:
            beams = call(model.beam_search, prime=prime, length=length, beam=beam,
                         num_results=num_samples, no_repeat=no_repeat, precision=precision)
            for j, b in enumerate(beams):
                if num_samples > 1:
                    out.write(f"{'' if j == 0 else chr(10)}--- beam {j + 1} of {beam}: "
                              f"log-probability {b.logprob:.3f} ({b.score:.4f} per "
                              f"character) ---\n")
                out.write(report.text(prime, b.text))
                if num_samples == 1:
                    report.say(f"log-probability {b.logprob:.3f} ({b.score:.4f} per "
                               f"character)")
                report.done(b.text[len(prime):])
            out.write("\n")
        elif num_samples == 1 and not sheet:
            chunks = call(model.stream, prime=prime, temperature=temperature, top_k=top_k,
                          top_p=top_p, seed=seed, length=length, stop=stop,
                          no_repeat=no_repeat, precision=precision)
            it = iter(chunks)
            report.start(prime)
            while True:
                chunk = call(next, it, None)
                if chunk is None:
                    break
                out.write(report.piece(chunk))
                out.flush()
            out.write("\n")
            report.done()
        else:
            pieces = call(model.stream_batch, prime=prime, length=length,
                          temperature=temperature, top_k=top_k, top_p=top_p, seed=seed,
                          num_samples=len(temperature) if sheet else num_samples, stop=stop,
                          no_repeat=no_repeat, precision=precision)
            K = len(temperature) if sheet else num_samples
            labels = ([f"--- temperature {t:g} ---" for t in temperature] if sheet else
                      [f"--- sample {j + 1} of {K} ---" for j in range(K)])
            _write_samples(out, pieces, K, labels, report, prime)
        out.flush()
    except BrokenPipeError:
        quiet_broken_pipe()
    except KeyboardInterrupt:
        sys.exit(130)


def _items(model, n, novel, length, temperature, top_k, top_p, seed, no_repeat, precision):
    """--items: the items on stdout, what became of the draws on stderr."""
    from charrnn.generate.items import as_text
    got = call(model.items, n, novel=novel, length=length, temperature=temperature,
               top_k=top_k, top_p=top_p, seed=seed, no_repeat=no_repeat, precision=precision)
    try:
        sys.stdout.write(as_text(got.texts))
        sys.stdout.flush()
    except BrokenPipeError:
        quiet_broken_pipe()
    if got.cut:
        click.echo(f"charrnn: {got.cut} of {len(got)} items reached --length {length} before "
                   "their end marker: cut there, not well-formed", err=True)
    if novel:
        click.echo(f"charrnn: --novel: {got.dropped} of {got.draws} items drawn were found "
                   "among the training documents and dropped", err=True)
        if len(got) < n:
            click.echo(f"charrnn: only {len(got)} novel items in {got.draws} draws, the "
                       f"limit (10 x {n}); try a higher --temp", err=True)
    elif got.known:
        click.echo(f"charrnn: {got.copies} of {got.draws} items are found verbatim among the "
                   "training documents (--novel drops them)", err=True)


class _Report:
    """--verbose (the longest repeat of each sample, on stderr) and --color."""

    def __init__(self, model, verbose, color):
        self.model, self.verbose, self.color = model, verbose, color
        self.colorer, self.parts = None, []
        if color:
            from charrnn.generate.color import legend
            click.echo(legend(), err=True)

    def start(self, prime):
        self.parts, self.prime_left = [], len(prime)
        if self.color:
            from charrnn.generate.color import Colorer
            self.colorer = Colorer(self.model, prime)

    def piece(self, text):
        """text as printed: the prime part as is, the generated part coloured."""
        keep = min(self.prime_left, len(text))
        self.prime_left -= keep
        head, tail = text[:keep], text[keep:]
        if self.verbose:
            self.parts.append(tail)
        return head + (self.colorer.feed(tail) if self.colorer else tail)

    def text(self, prime, whole):
        self.start(prime)
        return self.piece(whole)

    def say(self, message):
        if self.verbose:
            click.echo(message, err=True)

    def done(self, generated=None):
        if not self.verbose:
            return
        from charrnn.generate.loops import longest_repeat
        r = longest_repeat("".join(self.parts) if generated is None else generated)
        shown = r.text if len(r.text) <= 60 else r.text[:57] + "..."
        click.echo(f"longest repeated substring: {r.length} characters"
                   + (f" {shown!r}" if r.length else ""), err=True)


def _write_samples(out, pieces, K, labels, report, prime):
    """Sample 1 as it is made; samples 2..K, made alongside, wait in a temporary file
    (memory: one (offset, size) per piece) and follow, each under its header."""
    import tempfile
    index = [[] for _ in range(K)]
    with tempfile.TemporaryFile() as spool:
        out.write(labels[0] + "\n")
        report.start(prime)
        for j, text in pieces:
            if j == 0:
                out.write(report.piece(text))
                out.flush()
            elif text:
                data = text.encode("utf-8", "surrogatepass")
                index[j].append((spool.tell(), len(data)))
                spool.write(data)
        report.done()
        for j in range(1, K):
            out.write("\n" + labels[j] + "\n")
            report.start(prime)
            for offset, size in index[j]:
                spool.seek(offset)
                out.write(report.piece(spool.read(size).decode("utf-8", "surrogatepass")))
            report.done()
            spool.seek(0, 2)
        out.write("\n")


@click.command(name="eval")
@click.argument("checkpoint", type=click.Path(path_type=str))
@click.argument("file", type=click.Path(path_type=str))
@click.option("--latest", is_flag=True, help="Use model.safetensors, the newest weights, instead "
              "of best.safetensors (the default).")
@click.option("--best", is_flag=True, hidden=True, help="Use best.safetensors (the default).")
@click.option("--encoding", help="Encoding of FILE (default: the model's).")
@click.option("--encoding-errors", type=click.Choice(["strict", "replace", "ignore"]),
              default="strict", show_default=True, help="Invalid bytes in FILE (see train).")
@click.option("--unknown", type=click.Choice(["error", "skip"]), default="error",
              show_default=True, help="Characters the model never saw: an error, or skip "
              "them (the text is scored without them; the count is said).")
@click.option("--docs", type=click.Choice(["none", "lines", "files"]), default="none",
              show_default=True, help="For a model trained with --docs: score FILE as "
              "documents, one per line (lines) or the whole file as one (files).")
@click.option("--beam", default=1, show_default=True, type=click.IntRange(min=1),
              help="For a transducer (--task seq2seq): beam search with K hypotheses "
              "(1: greedy).")
@click.option("--threads", type=click.IntRange(min=1), help="For a transducer: batches "
              "decoded at once, one per thread (default: all cores; the result does not change).")
@NO_JOINT
@ENSEMBLE
def eval_(checkpoint, file, latest, best, encoding, encoding_errors, unknown, docs, beam,
          threads, no_joint, ensemble):
    """Loss of a model on a text file, in nats/char and bits/char. A run directory
    gives its best.safetensors; --latest its newest weights. Any text is scored (one
    repeated character too). For a classifier (--task classify), FILE holds
    label<TAB>text lines: accuracy, loss (nats per text) and the count per label.
    For a transducer (--task seq2seq), FILE holds source<TAB>target lines: word error
    rate (a source is right when its output matches any of its targets), token error
    rate (edit distance over reference length) and loss (nats per target token);
    --ensemble adds more transducers, scored as one (see charrnn transduce).

    \b
    Example:
      charrnn eval charrnn-runs/tinyshakespeare-20260101-120000 other.txt
      charrnn eval runs/names test.tsv
    """
    from charrnn.classifier import run_kind
    kind = call(run_kind, checkpoint, best=not latest)
    if ensemble and kind != "seq2seq":
        raise click.UsageError("--ensemble is for transducers (--task seq2seq)")
    if kind == "classifier":
        return _eval_classifier(checkpoint, file, latest, encoding, encoding_errors)
    if kind == "seq2seq":
        return eval_seq2seq(checkpoint, file, latest, encoding, encoding_errors, beam,
                            threads, ensemble, no_joint)
    from charrnn.model import evaluate
    model = load_model(checkpoint, latest, best)
    r = call(evaluate, model, file, encoding=encoding, encoding_errors=encoding_errors,
             unknown=unknown, docs=docs)
    skipped = r["skipped"]
    click.echo(f"loss {r['loss']:.4f} nats/char, {r['bpc']:.4f} bits/char over {r['chars']:,} "
               f"character{'s' * (r['chars'] != 1)}" + (
                   f" ({skipped:,} character{'s' * (skipped != 1)} the model never saw "
                   "skipped)" if skipped else ""))


def _eval_classifier(checkpoint, file, latest, encoding, encoding_errors):
    from charrnn.classifier import load_classifier
    clf = call(load_classifier, checkpoint, best=not latest)
    r = call(clf.evaluate, file, encoding or "utf-8", encoding_errors)
    loss = "-" if r["loss"] is None else f"{r['loss']:.4f}"
    click.echo(f"accuracy {r['accuracy']:.4f} ({round(r['accuracy'] * r['pairs']):,} of "
               f"{r['pairs']:,}), loss {loss} nats/text")
    width = max(len(l) for l in r["per_label"])
    for label, (hit, n) in sorted(r["per_label"].items()):
        click.echo(f"  {label.ljust(width)}  {hit:>6,} of {n:>6,}  {hit / n:.4f}")
    if r["unknown_labels"]:
        click.echo(f"  ({r['unknown_labels']:,} texts have a label the model does not know: "
                   "counted wrong, not in the loss)")
