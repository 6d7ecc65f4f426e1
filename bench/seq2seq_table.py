"""The Markdown table of a bench/seq2seq_train.py results file (run with --base), as
docs/internals/seq2seq.md shows it:

    python bench/seq2seq_table.py bench/results/g2p/DATE-CPU-train-speed.json
"""
import json
import sys


def table(path):
    d = json.load(open(path))
    out = ["| config | threads | PyTorch pairs/s | before: charrnn pairs/s, ratio (CPU time) | "
           "after: charrnn pairs/s, ratio (CPU time) | after vs PyTorch's best thread count |",
           "|---|---|---|---|---|---|"]
    for r in d["results"]:
        name = (f"{r['cell'].upper()} {r['encoder']}, dec {r['decoder']}, emb {r['embed']}, "
                f"batch {r['batch']}")
        out.append(f"| {name} | {r['threads']} | {r['torch_pairs_per_sec']:.0f} | "
                   f"{r['base_pairs_per_sec']:.0f}, {r['base_ratio']:.2f}x "
                   f"({r['base_ratio_cpu_time']:.2f}x) | "
                   f"{r['charrnn_pairs_per_sec']:.0f}, {r['ratio']:.2f}x "
                   f"({r['ratio_cpu_time']:.2f}x) | "
                   f"{r['base_ratio_vs_torch_best']:.2f}x -> {r['ratio_vs_torch_best']:.2f}x |")
    return "\n".join(out)


if __name__ == "__main__":
    print(table(sys.argv[1]))
