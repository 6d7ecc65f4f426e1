"""`charrnn sample -i`: a prompt that keeps the model loaded.

Type a start, the continuation streams; again and again. Lines starting with ':' are
commands (:help lists them). Ctrl-C stops the current generation and returns to the
prompt; Ctrl-D (or :quit) exits. Line editing and history come from readline where the
platform has it. Click only at import; the model arrives loaded.
"""
import sys

import click

from charrnn.cli.common import call

HELP = """commands (the rest of a line is a prompt to continue):
  :temp T        sampling temperature (0 = greedy)          :length N   characters per turn
  :seed S        seed of the next turn (then +1 each turn); :seed off for a fresh one each turn
  :beam K        beam search with K beams (:beam off to sample again)
  :norepeat N    never repeat a character N-gram (:norepeat off)
  :topk K, :topp P   limits of the draw (off to remove)
  :carry on|off  continue from the text so far (on) or start each turn afresh (off)
  :reset         forget the text so far (with :carry on)
  :show          the current settings        :help   this        :quit (or Ctrl-D)
Ctrl-C stops a generation and returns here."""

_OFF = ("off", "none", "0")


def repl(model, opts, color=False, prime=""):
    try:
        import readline  # noqa: F401  (line editing and history for input())
    except ImportError:
        pass
    opts = dict(opts)
    state = dict(carry=False, context=prime)
    click.echo(f"charrnn interactive: {len(model.vocab)} characters, {model.cfg.cell} "
               f"{model.cfg.layers}x{model.cfg.hidden}. :help for commands, Ctrl-D to quit.",
               err=True)
    while True:
        try:
            line = input("> ")
        except EOFError:
            click.echo("", err=True)
            return
        except KeyboardInterrupt:
            click.echo("", err=True)
            continue
        if line.startswith(":"):
            if _command(line[1:].strip(), opts, state) == "quit":
                return
            continue
        _turn(model, line, opts, state, color)


def _turn(model, text, opts, state, color):
    prime = state["context"] + text if state["carry"] else text
    out = sys.stdout
    generated = []
    try:
        if opts["beam"]:
            beams = call(model.beam_search, prime=prime, length=opts["length"],
                         beam=opts["beam"], no_repeat=opts["no_repeat"],
                         precision=opts.get("precision", "fp32"))
            pieces = [beams[0].text[len(prime):]]
        else:
            pieces = call(model.stream, prime=prime, temperature=opts["temperature"],
                          top_k=opts["top_k"], top_p=opts["top_p"], seed=opts["seed"],
                          length=opts["length"], stop=opts["stop"],
                          no_repeat=opts["no_repeat"],
                          precision=opts.get("precision", "fp32"))
        colorer = None
        if color:
            from charrnn.generate.color import Colorer
            colorer = Colorer(model, prime or "")
        _echo(text)
        first = not opts["beam"]   # a stream yields the prime first: skip it
        for piece in pieces:
            if first and prime:
                first = False
                continue
            first = False
            generated.append(piece)
            out.write(colorer.feed(piece) if colorer else piece)
            out.flush()
        out.write("\n")
    except click.ClickException as e:    # a library error, e.g. an unknown character
        click.echo(f"error: {e.message}", err=True)
        return
    except KeyboardInterrupt:
        out.write("\n")
        click.echo("(stopped)", err=True)
    if opts["seed"] is not None:
        opts["seed"] += 1
    state["context"] = prime + "".join(generated)


def _echo(text):
    """Put the continuation right after the typed text: on a terminal, back up onto the
    prompt's line (if it fit on one); elsewhere repeat the typed text."""
    import shutil
    if sys.stdout.isatty() and len("> " + text) < shutil.get_terminal_size().columns:
        sys.stdout.write(f"\x1b[A\r> {text}")
    else:
        sys.stdout.write(text)


def _command(line, opts, state):
    name, _, arg = line.partition(" ")
    arg = arg.strip()
    try:
        if name in ("q", "quit", "exit"):
            return "quit"
        if name in ("help", "h", "?"):
            click.echo(HELP)
        elif name == "show":
            click.echo(", ".join(f"{k} {v}" for k, v in opts.items() if k != "stop")
                       + f", carry {'on' if state['carry'] else 'off'}")
        elif name == "temp":
            t = float(arg)
            if not 0 <= t < float("inf"):
                raise ValueError
            opts["temperature"] = t
        elif name == "length":
            opts["length"] = _whole(arg, 1)
        elif name == "seed":
            opts["seed"] = None if arg in _OFF[:2] else _whole(arg, 0)
        elif name == "beam":
            opts["beam"] = None if arg in _OFF else _whole(arg, 1)
        elif name in ("norepeat", "no-repeat", "no_repeat"):
            opts["no_repeat"] = None if arg in _OFF else _whole(arg, 2)
        elif name in ("topk", "top-k"):
            opts["top_k"] = None if arg in _OFF else _whole(arg, 1)
        elif name in ("topp", "top-p"):
            p = None if arg in _OFF[:2] else float(arg)
            if p is not None and not 0 < p <= 1:
                raise ValueError
            opts["top_p"] = p
        elif name == "carry":
            if arg not in ("on", "off"):
                raise ValueError
            state["carry"] = arg == "on"
        elif name == "reset":
            state["context"] = ""
            click.echo("(the text so far is forgotten)", err=True)
        else:
            click.echo(f"unknown command :{name}; :help lists them", err=True)
            return None
        if name not in ("help", "h", "?", "show", "reset"):
            click.echo(f"({name} {arg})", err=True)
    except ValueError:
        click.echo(f"bad value for :{name}: {arg!r} (:help shows what each takes)", err=True)
    return None


def _whole(text, low):
    n = int(text)
    if n < low:
        raise ValueError
    return n
