"""`charrnn sample` and `charrnn eval`: use a trained model (thin over charrnn.model)."""
import sys

import click

from charrnn.cli.common import call, finite, load_model, quiet_broken_pipe


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


@click.command()
@click.argument("checkpoint", required=False, type=click.Path(path_type=str))
@click.option("--temp", "--temperature", "temperature", default=1.0, show_default=True,
              type=click.FloatRange(0), callback=finite, help="Sampling temperature; 0 is greedy (argmax).")
@click.option("--prime", default="", callback=lambda c, p, v: unescape(v),
              help="Text to start from: the state is warmed up on it and the output starts "
              "with it. Backslash escapes are read: \\n, \\t, \\\\ (a backslash), \\u00e9.")
@click.option("--length", default=2000, show_default=True, type=click.IntRange(min=1),
              help="Characters to generate (after the prime).")
@click.option("--top-k", type=click.IntRange(min=1), help="Sample only among the K likeliest characters.")
@click.option("--top-p", type=click.FloatRange(0, 1, min_open=True), callback=finite,
              help="Nucleus sampling: the smallest set of characters with probability >= P.")
@click.option("--seed", type=int, help="Random seed: same seed and checkpoint, same text.")
@click.option("--num-samples", default=1, show_default=True, type=click.IntRange(min=1),
              help="Generate K samples together (one batch), each under a header line "
              "'--- sample J of K ---': the first streams as it is made, the others follow "
              "(kept in a temporary file meanwhile, not in memory).")
@click.option("--stop", multiple=True, callback=lambda c, p, v: tuple(unescape(s) for s in v),
              help="End a sample when it emits this string (repeatable; backslash escapes "
              "as for --prime: --stop '\\n\\n' ends at a blank line).")
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
    model = load_model(checkpoint, latest, best)
    out = sys.stdout
    try:
        if num_samples == 1:
            chunks = call(model.stream, prime=prime, temperature=temperature, top_k=top_k,
                          top_p=top_p, seed=seed, length=length, stop=stop)
            it = iter(chunks)
            while True:
                chunk = call(next, it, None)
                if chunk is None:
                    break
                out.write(chunk)
                out.flush()
            out.write("\n")
        else:
            pieces = call(model.stream_batch, prime=prime, length=length,
                          temperature=temperature, top_k=top_k, top_p=top_p, seed=seed,
                          num_samples=num_samples, stop=stop)
            _write_samples(out, pieces, num_samples)
        out.flush()
    except BrokenPipeError:
        quiet_broken_pipe()
    except KeyboardInterrupt:
        sys.exit(130)


def _write_samples(out, pieces, K):
    """Sample 1 as it is made; samples 2..K, made alongside, wait in a temporary file
    (memory: one (offset, size) per piece) and follow, each under its header."""
    import tempfile
    index = [[] for _ in range(K)]
    with tempfile.TemporaryFile() as spool:
        out.write(f"--- sample 1 of {K} ---\n")
        for j, text in pieces:
            if j == 0:
                out.write(text)
                out.flush()
            elif text:
                data = text.encode("utf-8", "surrogatepass")
                index[j].append((spool.tell(), len(data)))
                spool.write(data)
        for j in range(1, K):
            out.write(f"\n--- sample {j + 1} of {K} ---\n")
            for offset, size in index[j]:
                spool.seek(offset)
                out.write(spool.read(size).decode("utf-8", "surrogatepass"))
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
def eval_(checkpoint, file, latest, best, encoding, encoding_errors, unknown):
    """Loss of a model on a text file, in nats/char and bits/char. A run directory
    gives its best.safetensors; --latest its newest weights. Any text is scored (one
    repeated character too).

    \b
    Example:
      charrnn eval charrnn-runs/tinyshakespeare-20260101-120000 other.txt
    """
    from charrnn.model import evaluate
    model = load_model(checkpoint, latest, best)
    r = call(evaluate, model, file, encoding=encoding, encoding_errors=encoding_errors,
             unknown=unknown)
    skipped = r["skipped"]
    click.echo(f"loss {r['loss']:.4f} nats/char, {r['bpc']:.4f} bits/char over {r['chars']:,} "
               f"character{'s' * (r['chars'] != 1)}" + (
                   f" ({skipped:,} character{'s' * (skipped != 1)} the model never saw "
                   "skipped)" if skipped else ""))
