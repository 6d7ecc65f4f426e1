"""`charrnn serve` under concurrent streaming clients: batched against one at a time.

    PYTHONPATH=. python bench/serve.py                       # 1, 8, 64, 256 clients
    PYTHONPATH=. python bench/serve.py --clients 1,64 --length 500 --rss-requests 10000

The model is the default 2x256 GRU (embed 64, the Tiny Shakespeare vocabulary) with
random weights (speed does not depend on the values), saved into a temporary run. For
each mode the server runs as its own process (`python -m charrnn.cli serve RUN`, 1 BLAS
thread) on 127.0.0.1:

- batched: the default (every request in flight advances in one batch, --max-batch 256)
- unbatched: `--no-batching` (one generation at a time through the batch-1 step)

For each client count C, C asyncio clients (httpx) each stream one completion of
--length characters (temperature 1, a different seed each) at the same moment. Reported:
aggregate characters/s (all characters / wall time from the first request to the last
[DONE]), time to the first chunk (p50, p99), p99 gap between two chunks of one stream,
failed requests, and the server's RSS after the round.

--rss-requests N (batched only): N more requests, 64 at a time, with the server's RSS at
request 1,000 and at request N (flat = no leak per request).

Results are written as JSON to bench/results/serve/ (one file per session).
"""
import argparse
import asyncio
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent


def make_run(root):
    sys.path.insert(0, str(ROOT))
    from charrnn.io.checkpoint import save_model
    from charrnn.model import CharRNN
    text = (ROOT / "data" / "tinyshakespeare.txt").read_text(encoding="utf-8")
    vocab = sorted(set(text))
    m = CharRNN(dict(cell="gru", hidden=256, layers=2, embed=64, vocab_size=len(vocab)),
                vocab, seed=0)
    run = Path(root) / "gru-2x256"
    run.mkdir()
    for f in ("model.safetensors", "best.safetensors"):
        save_model(run / f, m.params, m.config, m.vocab)
    return run


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(run, batched):
    port = free_port()
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1",
               OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "charrnn.cli", "serve", str(run), "--port", str(port),
           "--log-level", "warning", "--max-batch", "256", "--max-queue", "4096"]
    p = subprocess.Popen(cmd + ([] if batched else ["--no-batching"]), env=env)
    url = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            if httpx.get(url + "/health").status_code == 200:
                return p, url
        except httpx.TransportError:
            time.sleep(0.05)
    p.kill()
    raise RuntimeError("the server did not start")


def rss_mib(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def one(client, length, seed, t_start):
    body = dict(prompt="ROMEO:", max_tokens=length, seed=seed, stream=True)
    first, last, gaps, chars = None, None, [], 0
    try:
        async with client.stream("POST", "/v1/completions", json=body) as r:
            if r.status_code != 200:
                return None
            async for line in r.aiter_lines():
                if not line.startswith("data: {"):
                    continue
                now = time.perf_counter()
                text = json.loads(line[6:])["choices"][0]["text"]
                if not text:
                    continue
                chars += len(text)
                if first is None:
                    first = now - t_start
                else:
                    gaps.append(now - last)
                last = now
    except httpx.HTTPError:
        return None
    return (first, gaps, chars) if chars == length else None


async def round_(url, clients, length, seed0):
    limits = httpx.Limits(max_connections=clients + 4, max_keepalive_connections=clients + 4)
    async with httpx.AsyncClient(base_url=url, timeout=600, limits=limits) as client:
        t0 = time.perf_counter()
        results = await asyncio.gather(*(one(client, length, seed0 + i, t0)
                                         for i in range(clients)))
        wall = time.perf_counter() - t0
    ok = [r for r in results if r is not None]
    firsts = sorted(r[0] for r in ok)
    gaps = sorted(g for r in ok for g in r[1])

    def pct(xs, q):
        return xs[min(len(xs) - 1, int(q * len(xs)))] * 1000 if xs else float("nan")

    return dict(chars_per_s=sum(r[2] for r in ok) / wall, ttfc_p50_ms=pct(firsts, 0.5),
                ttfc_p99_ms=pct(firsts, 0.99), gap_p99_ms=pct(gaps, 0.99),
                failed=len(results) - len(ok))


async def rss_run(url, pid, n, length):
    marks = {}
    done = 0
    async with httpx.AsyncClient(base_url=url, timeout=600) as client:
        sem = asyncio.Semaphore(64)

        async def go(i):
            nonlocal done
            async with sem:
                await one(client, length, 10_000 + i, time.perf_counter())
            done += 1
            if done in (1000, n):
                marks[done] = rss_mib(pid)

        await asyncio.gather(*(go(i) for i in range(n)))
    return marks


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--clients", default="1,8,64,256")
    ap.add_argument("--length", type=int, default=500)
    ap.add_argument("--rss-requests", type=int, default=0)
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "serve"))
    args = ap.parse_args()
    counts = [int(c) for c in args.clients.split(",")]
    rows, rss = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        run = make_run(tmp)
        for batched in (True, False):
            p, url = start(run, batched)
            try:
                asyncio.run(round_(url, 4, 50, 0))          # warm-up
                for c in counts:
                    r = asyncio.run(round_(url, c, args.length, 1000 * c))
                    r.update(mode="batched" if batched else "unbatched", clients=c,
                             rss_mib=rss_mib(p.pid))
                    rows.append(r)
                    print(f"{r['mode']:>9} {c:4d} clients: {r['chars_per_s']:9,.0f} chars/s  "
                          f"first chunk p50 {r['ttfc_p50_ms']:7.1f} ms p99 "
                          f"{r['ttfc_p99_ms']:7.1f} ms  gap p99 {r['gap_p99_ms']:6.1f} ms  "
                          f"failed {r['failed']}  RSS {r['rss_mib']:.0f} MiB", flush=True)
                if batched and args.rss_requests:
                    rss = asyncio.run(rss_run(url, p.pid, args.rss_requests, args.length))
                    print(f"RSS at request 1,000: {rss.get(1000, float('nan')):.1f} MiB, at "
                          f"{args.rss_requests:,}: {rss.get(args.rss_requests, float('nan')):.1f} MiB")
            finally:
                p.terminate()
                p.wait(30)
    by = {(r["mode"], r["clients"]): r for r in rows}
    one_client = by.get(("batched", 1), {}).get("chars_per_s")
    ratios = {c: dict(vs_one=by[("batched", c)]["chars_per_s"] / one_client,
                      vs_unbatched=by[("batched", c)]["chars_per_s"]
                      / by[("unbatched", c)]["chars_per_s"])
              for c in counts if one_client and ("unbatched", c) in by}
    for c, q in ratios.items():
        print(f"{c:4d} clients: batched {q['vs_one']:.2f}x one client's rate, "
              f"{q['vs_unbatched']:.2f}x unbatched")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    cpu = next((line.split(":", 1)[1].strip() for line in
                Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    path = out / f"{time.strftime('%Y-%m-%d-%H%M%S')}.json"
    path.write_text(json.dumps(dict(machine=f"{cpu}, {os.cpu_count()} cores", date=time.strftime(
        "%Y-%m-%d"), length=args.length, rows=rows, ratios=ratios, rss=rss), indent=1))
    print(f"written {path}")


if __name__ == "__main__":
    main()
