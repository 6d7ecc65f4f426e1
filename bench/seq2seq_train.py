"""Training-step speed of charrnn's encoder-decoder against the same architecture in
PyTorch, on the same CMUdict batches (issue 32: ">= 1.5x").

    python bench/seq2seq_train.py --data /work/bench-runs/g2p/trainval.tsv \
        --out bench/results/g2p/DATE-CPU-train-speed.json

A step is what `charrnn train --task seq2seq` times in its loop: forward, backward,
global-norm clipping (5.0) and an Adam update, on batches bucketed by source length as
charrnn.training.classify_run's _rows cuts them (BUCKET batches sorted by length, then
shuffled). Both sides get the same padded batches, already built (building them costs
both the same and is not model speed); pairs/s counts the source-target pairs of the
timed batches.

The PyTorch model is the test's (tests/test_seq2seq_pytorch.py: nn.LSTM / nn.GRU
bidirectional over pack_padded_sequence, nn.LSTMCell / nn.GRUCell with input feeding,
Luong attention with a -inf length mask) in float32, written as a careful PyTorch user
would: attention as batched products (bmm), the output layer and cross-entropy once over
the valid steps after the loop, torch.optim.Adam, clip_grad_norm_. A benchmark-only
dependency, imported only in its child process.

Memory: charrnn's child keeps freed memory as the CLI does (charrnn.nn.heap's mallopt
calls). PyTorch's child gets the same glibc settings through MALLOC_MMAP_THRESHOLD_ and
MALLOC_TRIM_THRESHOLD_ (--torch-heap kept, the default: like for like; it gains as much,
~10% on gru-1x256), or glibc's malloc as it comes (--torch-heap default: what a PyTorch
user who has not tuned the allocator gets).
Threads: charrnn as the CLI runs them (charrnn.training.loop: with 2 or more, BLAS held
to one thread and model.parallel = cells.Parallel(threads), the own sgemm); PyTorch with
torch.set_num_threads. Every measurement is a fresh child process; for each config and
thread count the two sides alternate (who goes first flips each round) and a round's
ratio comes from its own pair of runs. Reported: medians over the rounds.
"""
import argparse
import datetime
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
# the charrnn measured: this checkout's, or --base's (a checkout built in place)
sys.path.insert(0, os.environ.get("BENCH_CHARRNN_ROOT")
                or os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from common import Steal, log, run_child, thread_env, torch_version  # noqa: E402

import numpy as np  # noqa: E402

BUCKET = 50   # as charrnn.training.classify_run.BUCKET
CONFIGS = {   # name: (cell, layers, hidden per direction, decoder, embed, batch)
    "default-gru": ("gru", 1, 128, 256, 32, 32),     # the CLI's auto choice for CMUdict
    "gru-1x256": ("gru", 1, 256, 512, 64, 64),
    "lstm-1x256": ("lstm", 1, 256, 512, 64, 64),
    "gru-2x192-b128": ("gru", 2, 192, 512, 64, 128),
    "gru-2x256": ("gru", 2, 256, 512, 64, 64),
}


def batches(path, B, count, seed=0):
    """`count` padded batches (src (S, N), src_len, tgt (T+1, N), tgt_len) of B pairs, the
    first of an epoch bucketed as classify_run._rows does; + the vocabulary sizes."""
    from charrnn.nn.classifier import pad_batch
    from charrnn.nn.seq2seq import BOS, EOS
    pairs = [line.rstrip("\n").split("\t") for line in open(path, encoding="utf-8")]
    chars = sorted({c for s, _ in pairs for c in s})
    tokens = sorted({t for _, p in pairs for t in p.split()})
    ci = {c: i + 1 for i, c in enumerate(chars)}
    ti = {t: i + 2 for i, t in enumerate(tokens)}
    xs = [np.array([ci[c] for c in s], np.int32) for s, _ in pairs]
    ys = [np.array([BOS] + [ti[t] for t in p.split()] + [EOS], np.int32) for _, p in pairs]
    lens = np.array([len(x) for x in xs])
    rng = np.random.default_rng([seed, 0xC1A55, 0])
    order = rng.permutation(len(xs))
    out = []
    for lo in range(0, len(order), B * BUCKET):
        chunk = order[lo:lo + B * BUCKET]
        chunk = chunk[np.argsort(lens[chunk], kind="stable")]
        out += [chunk[i:i + B] for i in range(0, len(chunk), B)]
    out = [out[i] for i in rng.permutation(len(out))[:count]]
    res = []
    for rows in out:
        src, src_len = pad_batch([xs[i] for i in rows])
        tgt, tl = pad_batch([ys[i] for i in rows])
        res.append((src, src_len, tgt, tl - 1))
    return res, len(chars) + 1, len(tokens) + 2


def _time(step, data, warmup, max_seconds):
    """Seconds and pairs of each timed batch, in order; stops after max_seconds (at least
    two batches): on a loaded machine a side can slow down tenfold."""
    for b in data[:warmup]:
        step(*b)
    secs, cpu, pairs = [], [], []
    for b in data[warmup:]:
        t0, c0 = time.perf_counter(), time.process_time()
        step(*b)
        secs.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
        pairs.append(len(b[1]))
        if sum(secs) > max_seconds and len(secs) >= 2:
            break
    return dict(seconds=secs, cpu_seconds=cpu, pairs=pairs)


def rate(run, k, clock="seconds"):
    """pairs/s over the first k timed batches of a run (per CPU second: clock
    "cpu_seconds", which other jobs on the machine disturb less, at one thread)."""
    return sum(run["pairs"][:k]) / sum(run[clock][:k])


def child_charrnn(cfg, threads, data, Vs, Vt, warmup, max_seconds):
    from threadpoolctl import threadpool_limits
    from charrnn.nn import cells, heap, optim
    from charrnn.nn.seq2seq import Seq2Seq
    heap.keep_freed_memory()   # as the command line does (charrnn.cli's main)
    cell, L, He, Hd, Em, _ = CONFIGS[cfg]
    m = Seq2Seq(dict(cell=cell, attention="luong", embed=Em, hidden=He, decoder=Hd, attn=Hd,
                     layers=L, src_vocab=Vs, tgt_vocab=Vt), seed=0)
    opt = optim.make("adam", m.flat.size)
    m.parallel = cells.Parallel(threads) if threads > 1 else None   # the CLI's split mode
    m.precision = os.environ.get("BENCH_PRECISION", "fp32")         # --charrnn-precision

    def step(src, src_len, tgt, tgt_len):
        m.grad_flat.fill(0)
        loss = m.forward_backward(src, src_len, tgt, tgt_len)
        _, gscale = optim.clip_scale(m.grad_flat, 5.0)
        opt.step(m.flat, m.grad_flat, 0.003, gscale, parallel=m.parallel)
        return loss
    with threadpool_limits(limits=1):
        return _time(step, data, warmup, max_seconds)


def child_torch(cfg, threads, data, Vs, Vt, warmup, max_seconds):
    import torch
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    cell, L, He, Hd, Em, _ = CONFIGS[cfg]
    C = 2 * He

    class Model(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.src_embed = torch.nn.Embedding(Vs, Em)
            self.enc = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[cell](
                Em, He, L, bidirectional=True)
            self.tgt_embed = torch.nn.Embedding(Vt, Em)
            self.dec = {"lstm": torch.nn.LSTMCell, "gru": torch.nn.GRUCell}[cell](Em + C, Hd)
            self.W_k = torch.nn.Linear(C, Hd, bias=False)
            self.out = torch.nn.Linear(Hd + C, Vt)

        def forward(self, src, src_len, tgt, tgt_len):
            S, N = src.shape
            T = tgt.shape[0] - 1
            packed = pack_padded_sequence(self.src_embed(src), src_len, enforce_sorted=False)
            e, _ = pad_packed_sequence(self.enc(packed)[0], total_length=S)
            e = e.transpose(0, 1)                                   # (N, S, C)
            keys = self.W_k(e)                                      # (N, S, Hd)
            mask = torch.arange(S)[None, :] >= src_len[:, None]     # (N, S)
            emb = self.tgt_embed(tgt[:T])                           # (T, N, Em)
            h = torch.zeros(N, Hd)
            c = torch.zeros(N, Hd)
            ctx = torch.zeros(N, C)
            feats = []
            for s in range(T):
                x = torch.cat([emb[s], ctx], dim=1)
                if cell == "lstm":
                    h, c = self.dec(x, (h, c))
                else:
                    h = self.dec(x, h)
                score = torch.bmm(keys, h[:, :, None])[:, :, 0]     # (N, S)
                alpha = torch.softmax(score.masked_fill(mask, -torch.inf), dim=1)
                ctx = torch.bmm(alpha[:, None, :], e)[:, 0]         # (N, C)
                feats.append(torch.cat([h, ctx], dim=1))
            valid = torch.arange(T)[:, None] < tgt_len[None, :]    # (T, N)
            rows = torch.stack(feats)[valid]                        # (M, Hd + C)
            return torch.nn.functional.cross_entropy(self.out(rows), tgt[1:][valid])

    m = Model()
    opt = torch.optim.Adam(m.parameters(), lr=0.003)
    tdata = [tuple(torch.from_numpy(np.asarray(a, np.int64)) for a in b) for b in data]

    def step(src, src_len, tgt, tgt_len):
        opt.zero_grad()
        loss = m(src, src_len, tgt, tgt_len)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(m.parameters(), 5.0)
        opt.step()
        return loss.item()
    return _time(step, tdata, warmup, max_seconds)


def model_flops(cfg, Vt, src_len, tgt_len):
    """Floating-point operations of one training step's matrix products, padding
    excluded: forward 2 per multiply-add, backward twice the forward (the input's and the
    weights' gradients). Per source character: each direction's cell, input and
    recurrent products, every encoder layer; the attention keys (C x A). Per target step
    (EOS included): the decoder cell's (Em + C) and Hd inputs, the attention over the
    source's characters (scores and context, 2 x S x C; Luong), the output layer. The
    measure bench/train.py uses for the language model, so its sgemm peak compares."""
    cell, L, He, Hd, Em, _ = CONFIGS[cfg]
    G = 4 if cell == "lstm" else 3
    C = 2 * He
    enc = sum(2 * G * He * ((Em if i == 0 else C) + He) for i in range(L))
    src, steps = float(np.sum(src_len)), float(np.sum(tgt_len))
    per_step = G * Hd * (Em + C) + G * Hd * Hd + (Hd + C) * Vt
    attn = 2.0 * C * float(np.sum(np.asarray(src_len) * np.asarray(tgt_len)))
    macs = src * (enc + C * Hd) + steps * per_step + attn
    return 3 * 2 * macs


def child(a):
    data, Vs, Vt = batches(a.data, CONFIGS[a.config][5], a.warmup + a.batches)
    fn = child_torch if a.child == "torch" else child_charrnn
    res = fn(a.config, a.threads, data, Vs, Vt, a.warmup, a.max_seconds)
    res["flops"] = [model_flops(a.config, Vt, b[1], b[3])
                    for b in data[a.warmup:a.warmup + len(res["seconds"])]]
    print(json.dumps(res))


def cpu_name():
    for line in open("/proc/cpuinfo"):
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown"


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default="/work/bench-runs/g2p/trainval.tsv")
    p.add_argument("--configs", default=",".join(CONFIGS))
    p.add_argument("--threads", default="1,2")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--batches", type=int, default=30, help="timed batches per run")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--max-seconds", type=float, default=20.0,
                   help="cut a run's timed batches after this long (ratios then use the "
                        "batches both sides timed)")
    p.add_argument("--charrnn-precision", choices=["fp32", "bf16"], default="fp32",
                   help="charrnn's --precision (PyTorch stays float32): bf16 measures what "
                        "charrnn's bf16 gains on a CPU that runs it natively")
    p.add_argument("--out", help="JSON results file (default: print only)")
    p.add_argument("--base", help="also measure the charrnn of this checkout (built in "
                                  "place), in the same rounds: before / after a change")
    p.add_argument("--torch-heap", choices=["kept", "default"], default="kept",
                   help="PyTorch's malloc: charrnn's settings (kept) or glibc's defaults")
    p.add_argument("--peak", action="store_true",
                   help="also measure the sgemm peak (bench/train.py's), for *_gflops")
    p.add_argument("--note", default="", help="machine load etc., recorded with the results")
    p.add_argument("--child", choices=["charrnn", "base", "torch"], help=argparse.SUPPRESS)
    p.add_argument("--config", help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.child:
        a.threads = int(a.threads)
        return child(a)
    configs, threads = a.configs.split(","), [int(t) for t in a.threads.split(",")]
    runs = {(c, t): [] for c in configs for t in threads}
    sides = ["charrnn", "torch"] + (["base"] if a.base else [])
    with Steal() as steal:
        for r in range(a.rounds):
            for c in configs:
                for t in threads:
                    order = sides[r % len(sides):] + sides[:r % len(sides)]   # who goes first
                    got = {}
                    for side in order:
                        env = thread_env(t, {"PYTHONPATH": os.path.dirname(__file__)})
                        if side == "torch" and a.torch_heap == "kept":
                            from charrnn.nn.heap import ENV
                            env.update(ENV)
                        if side == "base":
                            env["BENCH_CHARRNN_ROOT"] = os.path.abspath(a.base)
                        if side != "torch":
                            env["BENCH_PRECISION"] = a.charrnn_precision
                        got[side] = run_child(__file__, side, env, data=a.data, config=c,
                                              threads=t, batches=a.batches, warmup=a.warmup,
                                              max_seconds=a.max_seconds)
                    k = min(len(g["seconds"]) for g in got.values())   # batches all timed
                    got = {s: dict(g, pairs_per_sec=rate(g, k),
                                   pairs_per_cpu_sec=rate(g, k, "cpu_seconds"),
                                   gflops=sum(g["flops"][:k]) / sum(g["seconds"][:k]) / 1e9)
                           for s, g in got.items()}
                    runs[c, t].append(dict(got, batches=k))
                    log(f"round {r}: {c} x{t}: " + ", ".join(
                        f"{s} {g['pairs_per_sec']:.0f} pairs/s" for s, g in got.items())
                        + f" ({k} batches)")
    rows = []
    for (c, t), rs in runs.items():
        cell, L, He, Hd, Em, B = CONFIGS[c]
        row = dict(config=c, cell=cell, encoder=f"{L}x{He}", decoder=Hd, embed=Em, batch=B,
                   threads=t, timed_batches=[x["batches"] for x in rs])
        for side in sides:
            row[f"{side}_pairs_per_sec"] = round(float(np.median(
                [x[side]["pairs_per_sec"] for x in rs])), 1)
            row[f"{side}_gflops"] = round(float(np.median([x[side]["gflops"] for x in rs])), 1)
        for side in [s for s in sides if s != "torch"]:
            name = "ratio" if side == "charrnn" else "base_ratio"
            ratios = [x[side]["pairs_per_sec"] / x["torch"]["pairs_per_sec"] for x in rs]
            # PyTorch's best thread count up to t, round by round: on a shared machine its
            # OpenMP threads can collapse (2 threads far slower than 1), and a ratio
            # against that collapse flatters charrnn
            best = [x[side]["pairs_per_sec"] / max(runs[c, u][i]["torch"]["pairs_per_sec"]
                                                   for u in threads if u <= t)
                    for i, x in enumerate(rs)]
            cpu = [x[side]["pairs_per_cpu_sec"] / x["torch"]["pairs_per_cpu_sec"] for x in rs]
            row[name] = round(float(np.median(ratios)), 3)
            row[name + "s"] = [round(v, 3) for v in ratios]
            row[name + "_vs_torch_best"] = round(float(np.median(best)), 3)
            row[name + "_cpu_time"] = round(float(np.median(cpu)), 3)
        rows.append(row)
        print(json.dumps(row))
    import subprocess
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True, cwd=os.path.dirname(__file__)).stdout.strip()
    result = dict(
        bench="seq2seq training step (forward, backward, clip, Adam) vs PyTorch, issue 32",
        machine=f"{cpu_name()}, {os.cpu_count()} cores", note=a.note,
        date=datetime.date.today().isoformat(), commit=commit, torch=torch_version(),
        data=f"{a.data}: CMUdict train+val pairs; batches bucketed by source length as "
             f"classify_run._rows (seed 0, first epoch), {a.warmup} warm-up + {a.batches} "
             "timed batches per run, the same batches for both",
        attention="luong", rounds=a.rounds, steal_pct=steal.pct, torch_heap=a.torch_heap,
        charrnn_precision=a.charrnn_precision, torch_precision="fp32",
        base=a.base and subprocess.run(["git", "rev-parse", "--short", "HEAD"],
                                       capture_output=True, text=True,
                                       cwd=a.base).stdout.strip(),
        clocks="pairs_per_sec: wall clock; *_cpu_time: the ratio of pairs per CPU second "
               "(process time; at 2 threads it counts both threads, spinning included)",
        gflops="*_gflops: model_flops (the matrix products, padding excluded) per second",
        results=rows)
    if a.peak:   # the CPU's sgemm rate, as bench/train.py measures it for the language model
        result["sgemm_peak"] = run_child(os.path.join(os.path.dirname(__file__), "train.py"),
                                         "peak", thread_env(max(threads)), threads=a.threads,
                                         gemm_size=2048)
        log(f"sgemm peak (2048^2): {result['sgemm_peak']}")
    if a.out:
        with open(a.out, "w") as f:
            json.dump(result, f, indent=1)
            f.write("\n")


if __name__ == "__main__":
    main()
