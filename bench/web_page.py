"""The web export in a real browser: characters/s in the page against `charrnn sample`,
the page's size, and the time from opening it to the first character.

    PYTHONPATH=. python bench/web_page.py            # prints a Markdown table
    PYTHONPATH=. python bench/web_page.py --length 50000 --repeat 5
    PYTHONPATH=. python bench/web_page.py --screenshot docs/web-page.png   # the docs' picture

Models (the Tiny Shakespeare vocabulary, random weights: speed and size do not depend on
the values): A, LSTM 2x128 (embedding 128, as bench/sample.py's A), and the default
model, GRU 2x256 with embedding 64.

- page: `charrnn export --format html`, opened from file:// in headless Chromium
  (Debian's, over the DevTools pipe: tests/browser.py); the Generate button's run of
  --length characters with a fixed seed and temperature 1, streaming into the page;
  characters / the run's wall time in the page (performance.now), median of --repeat.
- charrnn sample: the same model, length, seed and temperature through model.generate
  (what `charrnn sample` runs), 1 thread (OMP/OPENBLAS threads 1), in this process, median
  of --repeat. The two texts are checked equal.
- first character: a fresh tab opens the page (it starts generating on open); the time
  from navigation start to the first generated character on screen (performance.now()),
  median of 5.
"""
import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

for v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[v] = "1"
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

import charrnn  # noqa: E402
from charrnn.export import export_html  # noqa: E402
from charrnn.io import checkpoint  # noqa: E402
from charrnn.model import CharRNN  # noqa: E402
from browser import Browser  # noqa: E402

TEXT = (Path(__file__).resolve().parent.parent / "data" / "tinyshakespeare.txt").read_text()
CONFIGS = {"A: LSTM 2x128": dict(cell="lstm", hidden=128, layers=2, embed=128),
           "default: GRU 2x256": dict(cell="gru", hidden=256, layers=2, embed=64)}


def cpu_name():
    for line in open("/proc/cpuinfo"):
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown CPU"


def page_run(tab, length, seed):
    return tab.eval(f"""(async () => {{
        await charrnnPage.ready;
        const set = (id, v) => document.getElementById(id).value = v;
        set("prompt", ""); set("seed", "{seed}"); set("length", "{length}");
        set("temperature", "1"); set("topk", "0"); set("topp", "1");
        await charrnnPage.generate();
        return charrnnPage.last;
    }})()""", timeout=600)


def screenshot(path, tmp):
    """docs/web-page.png: a 1x192 GRU trained for about a minute on Tiny Shakespeare,
    exported --int8, opened in headless Chromium, 700 characters from "ROMEO:"."""
    corpus = tmp / "tinyshakespeare.txt"
    corpus.write_text(TEXT, encoding="utf-8")
    run = tmp / "run"
    charrnn.train(str(corpus), out=str(run), quiet=True, threads=2, cell="gru", hidden=192,
                  layers=1, embed=48, max_steps=1500, max_minutes=0, eval_every=500,
                  seq_len=64, batch_size=32)
    page = export_html(run, tmp / "shakespeare.html", int8=True)
    with Browser() as b:
        tab = b.open(Path(page).as_uri() + "#prompt=ROMEO:&seed=3&length=700&temperature=0.7",
                     width=1000, height=760)
        tab.wait("charrnnPage.runs === 1", timeout=60)
        tab.screenshot(path, width=1000, height=760)
    print(f"wrote {path}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--length", type=int, default=20000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--screenshot", metavar="PNG", help="only write the docs' screenshot")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="charrnn-web-bench-"))
    if args.screenshot:
        return screenshot(args.screenshot, tmp)
    vocab = sorted(set(TEXT))
    rows, sizes, ttfc = [], {}, []
    with Browser() as b:
        for name, cfg in CONFIGS.items():
            m = CharRNN(dict(cfg, vocab_size=len(vocab)), vocab, seed=1)
            ck = tmp / f"{cfg['cell']}.safetensors"
            checkpoint.save_model(ck, m.params, m.config, m.vocab)
            page = export_html(ck, tmp / f"{cfg['cell']}.html")
            tab = b.open(Path(page).as_uri() + "#autostart=0")
            page_rates, native_rates = [], []
            for i in range(args.repeat):
                last = page_run(tab, args.length, i + 1)
                page_rates.append(args.length / (last["ms"] / 1000))
                t0 = time.perf_counter()
                want = m.generate(length=args.length, temperature=1.0, seed=i + 1)
                native_rates.append(args.length / (time.perf_counter() - t0))
                assert last["text"] == want, f"{name}: page and charrnn differ (seed {i + 1})"
            b.close_tab(tab)
            p, n = statistics.median(page_rates), statistics.median(native_rates)
            rows.append((name, p, n, p / n))
            if cfg["cell"] == "gru":
                sizes["float32"] = os.path.getsize(page)
                page8 = export_html(ck, tmp / "gru-int8.html", int8=True)
                sizes["int8"] = os.path.getsize(page8)
                tab = b.open(Path(page8).as_uri() + "#autostart=0")
                rates8 = [args.length / (page_run(tab, args.length, i + 1)["ms"] / 1000)
                          for i in range(args.repeat)]
                b.close_tab(tab)
                rows.append((name + " --int8", statistics.median(rates8), n,
                             statistics.median(rates8) / n))
                for _ in range(5):
                    tab = b.open(Path(page).as_uri())
                    tab.wait("charrnnPage.firstChar !== null")
                    ttfc.append(tab.eval("charrnnPage.firstChar"))
                    b.close_tab(tab)
    print(f"CPU: {cpu_name()} ({os.cpu_count()} cores), {args.length:,} characters, "
          f"temperature 1, batch 1, median of {args.repeat}\n")
    print("| model | page (chars/s) | charrnn sample (chars/s) | page / native |")
    print("|---|--:|--:|--:|")
    for name, p, n, r in rows:
        print(f"| {name} | {p:,.0f} | {n:,.0f} | {r:.0%} |")
    print(f"\nHTML size, default model: float32 {sizes['float32']:,} bytes, "
          f"int8 {sizes['int8']:,} bytes")
    print(f"first character after opening (default model, float32): median "
          f"{statistics.median(ttfc):.0f} ms (of {', '.join(f'{t:.0f}' for t in ttfc)})")


if __name__ == "__main__":
    main()
