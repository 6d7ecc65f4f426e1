"""Sampling speed and start-up time: charrnn against PyTorch.

    PYTHONPATH=. python bench/sample.py                     # configs A,B; 1 thread
    PYTHONPATH=. python bench/sample.py --threads 1,2 --repeat 7
    PYTHONPATH=. python bench/sample.py --precision fp32,bf16 --configs B,C,D,E --repeat 9

Models (embedding size = hidden size, the Tiny Shakespeare vocabulary, random weights:
speed does not depend on the values):

    A  LSTM 2x128        B  LSTM 2x256        C  LSTM 2x512
                         D  GRU 2x256         E  GRU 2x512

Each model is saved with charrnn.checkpoint.save_model into a temporary run directory;
charrnn loads it with charrnn.load, PyTorch with load_state_dict (the names are
PyTorch's). Every (side, config, thread count) runs in a fresh process with
OMP/OPENBLAS/MKL_NUM_THREADS set to the thread count, does one untimed warm-up, then
--repeat timed runs; the table gives medians, in characters generated per second:

- charrnn, batch 1: model.generate(length=L, temperature=1, seed=i), and the same
  through model.stream(length=L, ...) consumed to the end (what `charrnn sample`
  prints from). Both include building the sampler (weight re-layout) on each call.
- charrnn, --samples K together: model.generate(length=L, num_samples=K): K*L/time.
- PyTorch: under torch.no_grad(), a loop of single-step model(x, h) (nn.Embedding ->
  nn.LSTM -> nn.Linear), softmax of logits / temperature, torch.multinomial, for batch 1
  and batch K; the ids are turned into text at the end (inside the timing, as charrnn
  returns text too).

Start-up: the median wall time (--cold-repeat runs, after one untimed run so the file
cache is warm) of new processes: the bare interpreter, `import torch`, `charrnn --help`
and `charrnn sample RUN --length 200` for each model. charrnn runs as
`python -m charrnn.cli` unless --cli-script uses the `charrnn` script found on PATH.

--precision fp32,bf16 measures instead charrnn's batch-1 sampling at each precision
(charrnn sample --precision), 1 thread unless --threads: one process per model, the
sampler built once per precision (its bf16 copy of the weights is made once, at load),
then --repeat rounds, each timing generate(length=L, seed=i) at every precision in
turn (alternating, so that a change of load hits both alike); medians, the ratio, the
load average and the host's steal.

The Markdown output goes to stdout (progress to stderr), followed by the command line.
"""
import argparse
import json
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import common
from common import log, torch_version

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = {"A": ("lstm", 128, 2), "B": ("lstm", 256, 2),    # cell, hidden, layers
           "C": ("lstm", 512, 2), "D": ("gru", 256, 2), "E": ("gru", 512, 2)}
TEMPERATURE = 1.0


def make_run(run_dir, name, vocab, seed=0):
    """A run directory holding a model.safetensors with random weights for config name."""
    import numpy as np
    from charrnn.io.checkpoint import MODEL_FILE, expected_shapes, save_model

    cell, H, L = CONFIGS[name]
    config = {"cell": cell, "hidden": H, "layers": L, "embed": H, "dropout": 0.0,
              "vocab_size": len(vocab), "encoding": "utf-8"}
    rng = np.random.default_rng(seed)
    k = 1 / np.sqrt(H)                      # PyTorch's init range for the cells
    params = {n: rng.uniform(-k, k, s) if n.startswith("rnn.") else rng.uniform(-0.1, 0.1, s)
              for n, s in expected_shapes(config).items()}
    os.makedirs(run_dir, exist_ok=True)
    save_model(os.path.join(run_dir, MODEL_FILE), params, config, vocab)


def timed(fn, repeat):
    """fn(i) -> characters made; one warm-up call, then chars/s of `repeat` calls."""
    fn(-1)
    rates = []
    for i in range(repeat):
        t0 = time.perf_counter()
        n = fn(i)
        rates.append(n / (time.perf_counter() - t0))
    return rates


# ---- children: each prints one JSON line ------------------------------------------------

def child_charrnn(a):
    from threadpoolctl import threadpool_limits
    import charrnn

    model = charrnn.load(a.run)
    L, K = a.length, a.samples

    def generate(i):
        return len(model.generate(length=L, temperature=TEMPERATURE, seed=i + 1))

    def stream(i):
        return len("".join(model.stream(length=L, temperature=TEMPERATURE, seed=i + 1)))

    def batch(i):
        texts = model.generate(length=L, temperature=TEMPERATURE, seed=i + 1, num_samples=K)
        return sum(map(len, texts))

    with threadpool_limits(limits=a.threads):
        return {"generate": timed(generate, a.repeat), "stream": timed(stream, a.repeat),
                "batch": timed(batch, a.repeat)}


def child_precision(a):
    """chars/s of batch-1 generate() at each of a.precision, alternating round by round."""
    from threadpoolctl import threadpool_limits
    import charrnn

    model = charrnn.load(a.run)
    precisions = a.precision.split(",")
    samplers = {p: model._sampler(p) for p in precisions}
    rates = {p: [] for p in precisions}
    with threadpool_limits(limits=a.threads):
        for i in range(-1, a.repeat):                     # round -1: warm-up
            for p in precisions:
                t0 = time.perf_counter()
                n = len(samplers[p].generate(length=a.length, temperature=TEMPERATURE,
                                             seed=i + 2))
                if i >= 0:
                    rates[p].append(n / (time.perf_counter() - t0))
    return rates


def weights_mib(name, V):
    """MiB of float32 weight matrices a batch-1 step reads (layer 0's input part is a
    table row, not a product): W_hh of every layer, W_ih of the others, the decoder."""
    cell, H, L = CONFIGS[name]
    G = {"lstm": 4, "gru": 3, "rnn": 1}[cell]
    return 4 * (L * G * H * H + (L - 1) * G * H * H + V * H) / 2**20


def precision_main(a, configs, threads, vocab):
    """--precision: the table of charrnn's batch-1 sampling speed at each precision."""
    rows = []
    with tempfile.TemporaryDirectory(prefix="charrnn-bench-") as tmp, common.Steal() as steal:
        load0 = os.getloadavg()
        for name in configs:
            run = os.path.join(tmp, name)
            make_run(run, name, vocab)
            for t in threads:
                out = common.run_child(__file__, "precision", common.thread_env(t),
                                       threads=t, run=run, length=a.length,
                                       repeat=a.repeat, precision=a.precision)
                med = {p: statistics.median(v) for p, v in out.items()}
                log(f"{name} threads={t}: {json.dumps({p: round(v) for p, v in med.items()})}")
                rows.append({"config": name, "model": model_name(name), "threads": t,
                             "weights_mib": round(weights_mib(name, len(vocab)), 2),
                             "chars_per_s": med, "runs": out})
        load1 = os.getloadavg()
    precisions = a.precision.split(",")
    cpu = _cpu_name()
    head = (f"charrnn batch-1 sampling, characters per second (median of {a.repeat} "
            f"alternating rounds, {a.length} characters, temperature {TEMPERATURE:g}); "
            f"CPU: {cpu}; load average {load0[0]:.1f} before, {load1[0]:.1f} after; "
            f"steal {'n/a' if steal.pct is None else f'{steal.pct:.1f}%'}:\n")
    out = [head, "| Model | fp32 weights | Threads | " + " | ".join(precisions)
           + (f" | {precisions[1]} / {precisions[0]} |" if len(precisions) == 2 else " |"),
           "|---|--:|--:|" + "--:|" * (len(precisions) + (len(precisions) == 2))]
    for r in rows:
        c = r["chars_per_s"]
        ratio = (f" {c[precisions[1]] / c[precisions[0]]:.2f}× |"
                 if len(precisions) == 2 else "")
        out.append(f"| {r['config']}: {r['model']} | {r['weights_mib']:.1f} MiB | "
                   f"{r['threads']} | " + " | ".join(f"{c[p]:,.0f}" for p in precisions)
                   + " |" + ratio)
    out.append(f"\nCommand: `python bench/sample.py {shlex.join(sys.argv[1:])}`")
    print("\n".join(out))
    if a.json:
        os.makedirs(os.path.dirname(os.path.abspath(a.json)), exist_ok=True)
        with open(a.json, "w") as f:
            json.dump({"command": sys.argv, "cpu": cpu, "loadavg_before": load0,
                       "loadavg_after": load1, "steal_pct": steal.pct, "rows": rows},
                      f, indent=1)


def _cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return f"{line.split(':', 1)[1].strip()} ({os.cpu_count()} CPUs)"
    except OSError:
        pass
    return "unknown"


def child_torch(a):
    import torch
    from safetensors import safe_open
    from safetensors.torch import load_file
    from torch import nn

    torch.set_num_threads(a.threads)
    path = os.path.join(a.run, "model.safetensors")
    with safe_open(path, "pt") as f:
        meta = f.metadata()
    config, vocab = json.loads(meta["config"]), json.loads(meta["vocab"])
    V, H, L = config["vocab_size"], config["hidden"], config["layers"]

    class Model(nn.Module):
        def __init__(self):
            super().__init__()
            self.encoder = nn.Embedding(V, config["embed"])
            self.rnn = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN}[config["cell"]](
                config["embed"], H, num_layers=L)
            self.decoder = nn.Linear(H, V)

        def forward(self, x, h):                          # x (1, B)
            y, h = self.rnn(self.encoder(x), h)           # (1, B, H)
            return self.decoder(y), h                     # (1, B, V)

    model = Model()
    model.load_state_dict(load_file(path), strict=True)
    model.eval()
    start = vocab.index("\n") if "\n" in vocab else 0

    @torch.no_grad()
    def sample(length, B, seed):
        torch.manual_seed(seed)
        x = torch.full((1, B), start, dtype=torch.long)
        h = None
        out = torch.empty((length, B), dtype=torch.long)
        for t in range(length):
            logits, h = model(x, h)
            probs = torch.softmax(logits[0] / TEMPERATURE, dim=-1)   # (B, V)
            x = torch.multinomial(probs, 1).view(1, B)
            out[t] = x[0]
        return ["".join(vocab[j] for j in row) for row in out.T.tolist()]

    return {"batch1": timed(lambda i: len(sample(a.length, 1, i + 1)[0]), a.repeat),
            "batch": timed(lambda i: sum(map(len, sample(a.length, a.samples, i + 1))),
                           a.repeat)}


# ---- parent -------------------------------------------------------------------------

def run_child(kind, threads, **args):
    out = common.run_child(__file__, kind, common.thread_env(threads), threads=threads, **args)
    return {k: statistics.median(v) for k, v in out.items()}


def wall_time(cmd, repeat):
    """Median seconds of `cmd` as a new process (after one untimed run); exits on failure."""
    times = []
    for i in range(repeat + 1):
        t0 = time.perf_counter()
        p = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        if p.returncode != 0:
            sys.exit(f"bench/sample.py: {shlex.join(cmd)} failed:\n{p.stderr}")
        if i:
            times.append(time.perf_counter() - t0)
    return statistics.median(times)




def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--configs", default="A,B", help="comma-separated (default: A,B)")
    ap.add_argument("--threads", default="1", help="thread counts to measure (default: 1)")
    ap.add_argument("--repeat", type=int, default=5, help="timed runs per measurement (default: 5)")
    ap.add_argument("--length", type=int, default=2000, help="characters per sample (default: 2000)")
    ap.add_argument("--samples", type=int, default=32, help="samples generated together (default: 32)")
    ap.add_argument("--cold-repeat", type=int, default=5, help="runs per start-up command (default: 5)")
    ap.add_argument("--cli-script", action="store_true",
                    help="time the `charrnn` script on PATH instead of `python -m charrnn.cli`")
    ap.add_argument("--no-torch", action="store_true", help="measure charrnn only")
    ap.add_argument("--corpus", default=os.path.join(REPO, "data", "tinyshakespeare.txt"),
                    help="text whose characters make the vocabulary (default: data/tinyshakespeare.txt)")
    ap.add_argument("--json", metavar="FILE", help="also write the results to FILE")
    ap.add_argument("--precision", help="compare charrnn's sampling precisions instead "
                    "(e.g. fp32,bf16; see above)")
    # internal: one measurement in this process
    ap.add_argument("--child", choices=["charrnn", "torch", "precision"], help=argparse.SUPPRESS)
    ap.add_argument("--run", help=argparse.SUPPRESS)
    a = ap.parse_args()

    if a.child:
        a.threads = int(a.threads)
        child = {"charrnn": child_charrnn, "torch": child_torch,
                 "precision": child_precision}[a.child]
        print(json.dumps(child(a)))
        return

    configs = [c.strip().upper() for c in a.configs.split(",") if c.strip()]
    bad = [c for c in configs if c not in CONFIGS]
    if bad:
        ap.error(f"unknown config(s) {', '.join(bad)}; choose from {', '.join(CONFIGS)}")
    threads = [int(t) for t in a.threads.split(",")]
    if min(a.repeat, a.length, a.samples, a.cold_repeat, *threads) < 1:
        ap.error("--repeat, --length, --samples, --cold-repeat and --threads must be at least 1")
    if a.cli_script:
        script = shutil.which("charrnn")
        if script is None:
            ap.error("--cli-script: no `charrnn` on PATH")
        cli, cli_note = [script], f"the installed script {script}"
    else:
        cli, cli_note = [sys.executable, "-m", "charrnn.cli"], "`python -m charrnn.cli`"
    with open(a.corpus, encoding="utf-8") as f:
        vocab = sorted(set(f.read()))
    if a.precision:
        bad = [p for p in a.precision.split(",") if p not in ("fp32", "bf16")]
        if bad:
            ap.error(f"--precision: unknown {', '.join(bad)}; choose from fp32, bf16")
        return precision_main(a, configs, threads, vocab)
    tv = None if a.no_torch else torch_version()
    if not a.no_torch and tv is None:
        log("note: `import torch` fails here; measuring charrnn only")

    speed, cold = [], []
    with tempfile.TemporaryDirectory(prefix="charrnn-bench-") as tmp:
        runs = {}
        for name in configs:
            runs[name] = os.path.join(tmp, name)
            make_run(runs[name], name, vocab)
        for name in configs:
            for t in threads:
                opts = dict(run=runs[name], length=a.length, samples=a.samples, repeat=a.repeat)
                c = run_child("charrnn", t, **opts)
                p = run_child("torch", t, **opts) if tv else {}
                log(f"{name} threads={t}: charrnn {json.dumps({k: round(v) for k, v in c.items()})}"
                    f" PyTorch {json.dumps({k: round(v) for k, v in p.items()})}")
                speed.append({"config": name, "threads": t, "charrnn": c, "torch": p})

        py = [sys.executable]
        commands = [("`python -c pass` (the interpreter alone)", py + ["-c", "pass"])]
        if tv:
            commands.append(("`python -c \"import torch\"`", py + ["-c", "import torch"]))
        commands.append(("`charrnn --help`", cli + ["--help"]))
        for name in configs:
            commands.append((f"`charrnn sample RUN --length 200` ({name}: {model_name(name)})",
                             cli + ["sample", runs[name], "--length", "200", "--seed", "1", "--latest"]))
        for label, cmd in commands:
            cold.append((label, wall_time(cmd, a.cold_repeat)))
            log(f"{label}: {cold[-1][1]:.3f} s")

    print(report(speed, cold, tv, a, cli_note))
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"torch": tv, "command": sys.argv, "speed": speed, "cold": cold}, f, indent=1)


def plural(n, word):
    return f"{n} {word}{'' if n == 1 else 's'}"


def model_name(name):
    cell, H, L = CONFIGS[name]
    return f"{cell.upper()} {L}×{H}"


def report(speed, cold, tv, a, cli_note):
    def n(x):
        return f"{x:,.0f}" if x else "–"

    def ratio(x, y):
        return f"{x / y:.1f}×" if x and y else "–"

    K = a.samples
    out = [f"Sampling speed in characters per second (median of {a.repeat}; {a.length} "
           f"characters per sample, temperature {TEMPERATURE:g}, random weights; "
           f"PyTorch {tv or ('not measured' if a.no_torch else 'not available')}):\n",
           "| Model | Threads | charrnn generate(), batch 1 | charrnn stream(), batch 1 "
           f"| PyTorch, batch 1 | charrnn / PyTorch | charrnn, {K} samples | PyTorch, batch {K} "
           "| charrnn / PyTorch |",
           "|---|--:|--:|--:|--:|--:|--:|--:|--:|"]
    for r in speed:
        c, p = r["charrnn"], r["torch"]
        out.append(f"| {r['config']}: {model_name(r['config'])} | {r['threads']} "
                   f"| {n(c['generate'])} | {n(c['stream'])} | {n(p.get('batch1'))} "
                   f"| {ratio(c['generate'], p.get('batch1'))} | {n(c['batch'])} "
                   f"| {n(p.get('batch'))} | {ratio(c['batch'], p.get('batch'))} |")
    out += ["", f"Start-up: median wall time of a new process ({plural(a.cold_repeat, 'run')} after one "
            f"untimed run; charrnn run as {cli_note}):\n",
            "| Command | Wall time |", "|---|--:|"]
    out += [f"| {label} | {s:.2f} s |" for label, s in cold]
    script = os.path.relpath(os.path.abspath(__file__), REPO)
    out.append(f"\nCommand: `python {script} {shlex.join(sys.argv[1:])}`")
    return "\n".join(out)


if __name__ == "__main__":
    main()
