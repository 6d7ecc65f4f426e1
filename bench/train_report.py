"""The Markdown report of bench/train.py: the speed table, peak memory, the peaks per
tier, the machine and the host's steal."""
import os
import shlex
import statistics
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CELL_NAMES = {"lstm": "LSTM", "gru": "GRU", "rnn": "RNN (tanh)"}


def plural(n, word):
    return f"{n} {word}{'' if n == 1 else 's'}"


def fmt_int(x):
    return f"{x:,.0f}" if x is not None else "–"


def steal_summary(results):
    """A line on the host's steal over every measurement, or None where it is unknown."""
    runs = [(m["steal_pct"], r, side) for r in results for side, ms in r["runs"].items()
            for m in ms if m.get("steal_pct") is not None]
    if not runs:
        return None
    worst, r, side = max(runs, key=lambda x: x[0])
    busy = sum(1 for pct, _, _ in runs if pct > 5)
    return (f"Host steal (/proc/stat, time the hypervisor gave to other guests) per "
            f"measurement: median {statistics.median(p for p, _, _ in runs):.1f}%, most "
            f"{worst:.1f}% ({r['isa']} {r['config']} {r['threads']} thread(s), {side}); "
            f"{busy} of {len(runs)} above 5% (steal slows a run, not its code; a busy neighbour on "
            "the same physical cores or L3 does too, and shows no steal).")


def own_pct(r):
    g = r.get("own_peak_gflops")
    return f"{100 * r['gflops'] / g:.0f}%" if g else "–"


def report(results, envs, tv, a, threads):
    out = []
    torch_col = f"PyTorch {tv} chars/s" if tv else "PyTorch chars/s"
    out.append(f"Training speed in characters per second (median of {plural(a.repeat, 'run')}; "
               f"{plural(a.warmup, 'warm-up step')}, then the steps shown, timed):\n")
    out.append(f"| Tier | Config | Precision | Model | Batch × seq | Threads | Steps | charrnn chars/s "
               f"| {torch_col} | charrnn / PyTorch | charrnn GFLOP/s | % of BLAS sgemm peak "
               "| % of own sgemm peak |")
    out.append("|---|---|---|---|---|--:|--:|--:|--:|--:|--:|--:|--:|")
    for r in results:
        ratio = f"{r['ratio']:.2f}×" if r["ratio"] else "–"
        prec = r.get("precision", "fp32")   # (results saved before --precision: fp32)
        out.append(f"| {r['isa']} | {r['config']} | {prec} | {CELL_NAMES[r['cell']]} {r['layers']}×{r['hidden']} "
                   f"| {r['batch']} × {r['seq']} | {r['threads']} | {r['steps']} "
                   f"| {fmt_int(r['charrnn'])} | {fmt_int(r['torch'])} | {ratio} "
                   f"| {r['gflops']:.1f} | {100 * r['gflops'] / r['peak_gflops']:.0f}% "
                   f"| {own_pct(r)} |")
    out.append("")
    out.append(f"Peak memory of the training process (VmHWM, median; {plural(threads[0], 'thread')}):\n")
    out.append("| Tier | Config | Precision | charrnn | PyTorch |")
    out.append("|---|---|---|--:|--:|")
    for r in results:
        if r["threads"] == threads[0]:
            pt = f"{r['rss_torch']:.0f} MiB" if r["rss_torch"] else "–"
            out.append(f"| {r['isa']} | {r['config']} | {r.get('precision', 'fp32')} "
                       f"| {r['rss_charrnn']:.0f} MiB | {pt} |")
    out.append("")
    for env in envs.values():
        peaks = ", ".join(f"{plural(t, 'thread')} {g:.0f} GFLOP/s"
                          for t, g in sorted((int(k), v) for k, v in env["peak_gflops"].items()))
        line = (f"Tier {env['isa']}: sgemm peak ({a.gemm_size}×{a.gemm_size}, best of 5), "
                f"SciPy's BLAS (charrnn._twins.gemm; {'; '.join(env['blas'])}): {peaks}")
        if env.get("own_peak_gflops"):
            own = ", ".join(f"{plural(t, 'thread')} {g:.0f} GFLOP/s"
                            for t, g in sorted((int(k), v) for k, v in env["own_peak_gflops"].items()))
            line += (f"; charrnn's own sgemm, {env['isa']} micro-kernel {env['tile'][0]}×{env['tile'][1]} "
                     f"(t threads take n/t rows each): {own}")
        out.append(line + ".")
    env = next(iter(envs.values()))
    out.append("GFLOP/s counts 3× the forward FLOPs (matrix products only) of the model as "
               "PyTorch computes it: an effective rate, since charrnn's first layer multiplies "
               "its V-row embedding table instead of the T×N gathered rows (no dropout here).")
    out.append(f"Machine: {env['cpu']}, {env['cores']} cores; Python {env['python']}, "
               f"NumPy {env['numpy']}, SciPy {env['scipy']}, "
               f"charrnn {env['charrnn']}" + (f", PyTorch {tv}" if tv else "") + ".")
    steal = steal_summary(results)
    if steal:
        out.append(steal)
    script = os.path.relpath(os.path.abspath(sys.argv[0]), REPO)
    out.append(f"\nCommand: `python {script} {shlex.join(sys.argv[1:])}`")
    return "\n".join(out)

