"""`charrnn export`: a trained model to ONNX, one C99 file, one HTML page or a web folder
(thin over charrnn.export).

Registered in charrnn/cli/__init__.py; like the rest of the CLI it imports nothing heavy at start-up.
"""
import click

from charrnn.cli.common import call, load_model


@click.command()
@click.argument("run", required=False, type=click.Path(path_type=str))
@click.option("--format", "fmt", required=True, type=click.Choice(["onnx", "c", "html", "web"]),
              help="onnx: an ONNX model for onnxruntime & co.; c: one C99 file; html: one "
              "self-contained web page; web: a folder with an ES module, the .wasm, the "
              "weights and index.html.")
@click.option("-o", "--output", required=True, type=click.Path(path_type=str),
              help="File to write (replaced atomically if it exists); a folder for web.")
@click.option("--int8", is_flag=True, help="C, html, web: per-row int8 weights with float "
              "scales (about 4x smaller).")
@click.option("--prefix", default="charrnn", show_default=True,
              help="C only: prefix of the public C symbols (charrnn_step, ...).")
@click.option("--latest", is_flag=True, help="Export model.safetensors, the newest weights, "
              "instead of best.safetensors (the default, as for charrnn sample).")
@click.option("--best", is_flag=True, hidden=True, help="Use best.safetensors (the default).")
def export(run, fmt, output, int8, prefix, latest, best):
    """Export RUN (a run directory or .safetensors checkpoint; default: the most recent
    run under charrnn-runs/) to ONNX, to C, to a web page or to a web folder.

    \b
    onnx: inputs tokens (T, B) int64, h0 (L, B, H) [and c0 for an LSTM];
          outputs logits (T, B, V), hn [and cn]; vocabulary in the metadata.
          A classifier's: inputs ids (T, B) int64, lengths (B,) int32; outputs
          probabilities (B, C), logits; vocabulary and labels in the metadata.
          A transducer's: the folder -o DIR with encode.onnx and step.onnx (the
          decoding loop is the caller's; docs/export.md shows one).
    c:    static const weights, no malloc; -DCHARRNN_MAIN makes it a program
          taking --length N --temp T --seed S --prime TEXT. A transducer's
          (--task seq2seq) decodes greedily: ./model [--scores] [TEXT]...;
          a classifier's labels: ./model [--all] [TEXT]...
    html: one page (WebAssembly inside), opens from disk with no network.
    web:  DIR/charrnn.js (ml5.js CharRNN's API), charrnn.wasm, model.bin, index.html.

    \b
    Example:
      charrnn export charrnn-runs/tinyshakespeare-20260101-120000 --format onnx -o model.onnx
      charrnn export RUN --format c -o model.c --int8
      cc -std=c99 -O2 -DCHARRNN_MAIN model.c -lm -o model && ./model --prime "ROMEO:" --seed 1
      charrnn export runs/g2p --format c -o g2p.c && cc -O2 -DCHARRNN_MAIN g2p.c -lm -o g2p
      charrnn export runs/lang --format c -o lang.c --int8
      charrnn export runs/lang --format onnx -o lang.onnx
      charrnn export runs/g2p --format onnx -o g2p-onnx
      charrnn export RUN --format html -o model.html --int8
      charrnn export RUN --format web -o site/model
    """
    from charrnn import export as api
    if fmt == "onnx" and int8:
        raise click.UsageError("--int8 applies to --format c, html and web, not onnx")
    if fmt != "c" and prefix != "charrnn":
        raise click.UsageError("--prefix applies to --format c only")
    from charrnn.classifier import run_kind
    from charrnn.io.rundir import latest_run
    target = run or latest_run()
    kind = call(run_kind, target, best=not latest) if target else "lm"   # lm: load_model explains
    if kind in ("classifier", "seq2seq"):
        if fmt not in ("c", "onnx"):
            what = "a classifier" if kind == "classifier" else "a transducer"
            raise click.UsageError(f"{target} is {what}: it exports to C or ONNX "
                                   "(--format c, --format onnx)")
        if kind == "classifier":
            from charrnn.classifier import load_classifier as load
        else:
            from charrnn.training.seq2seq import load_transducer as load
        loaded = call(load, target, best=not latest)
        if fmt == "onnx":
            call(api.export_onnx, loaded, output)
        else:
            call(api.export_c, loaded, output, int8=int8, prefix=prefix)
        click.echo(f"charrnn: wrote {output}", err=True)
        return
    model = load_model(run, latest, best)
    if fmt == "onnx":
        call(api.export_onnx, model, output)
    elif fmt in ("html", "web"):
        from charrnn.export.web_page import run_info
        from charrnn.io.rundir import latest_run
        info = run_info(run or latest_run(), best=not latest)
        fn = api.export_html if fmt == "html" else api.export_web
        call(fn, model, output, int8=int8, info=info)
    else:
        call(api.export_c, model, output, int8=int8, prefix=prefix)
    click.echo(f"charrnn: wrote {output}", err=True)
