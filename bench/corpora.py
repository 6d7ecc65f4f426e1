"""Make the corpora of the defaults benchmark, reproducibly, into a directory.

    python bench/corpora.py OUT_DIR [--big-mb 24] [--huge-mb 0]

    shakespeare-10k.txt    the first 10,000 characters of the bundled Tiny Shakespeare
    shakespeare-100k.txt   the first 100,000 characters
    shakespeare-1m.txt     a copy of the bundled corpus (1,115,394 characters)
    stdlib-<N>mb.txt       the standard library's .py sources of the Python running this,
                           in sorted path order, each file followed by a blank line, cut at
                           the last whole file before N MB (files that are not UTF-8 are
                           skipped); the same Python version gives the same bytes
    stdlib-x<M>mb.txt      (--huge-mb M) the stdlib sources repeated up to M MB: a large
                           corpus for memory measurements (not for loss comparisons)
"""
import argparse
import sys
import sysconfig
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from charrnn.data.corpus import bundled_corpus  # noqa: E402


def stdlib_sources():
    """Each UTF-8 .py file of the running Python's stdlib (not site-packages), as bytes."""
    root = Path(sysconfig.get_paths()["stdlib"])
    for f in sorted(root.rglob("*.py")):
        if "site-packages" in f.parts or "dist-packages" in f.parts:
            continue
        try:
            b = f.read_bytes()
            b.decode("utf-8")
        except (OSError, UnicodeDecodeError):
            continue
        yield b + b"\n\n"


def write_stdlib(path, limit_bytes, repeat=False):
    n = 0
    with open(path, "wb") as out:
        while True:
            wrote = False
            for b in stdlib_sources():
                if n + len(b) > limit_bytes:
                    return n
                out.write(b)
                n += len(b)
                wrote = True
            if not repeat or not wrote:
                return n


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--big-mb", type=float, default=24)
    ap.add_argument("--huge-mb", type=float, default=0)
    a = ap.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    text = bundled_corpus().read_text(encoding="utf-8")
    made = {}
    for name, n in (("shakespeare-10k.txt", 10_000), ("shakespeare-100k.txt", 100_000),
                    ("shakespeare-1m.txt", len(text))):
        (a.out / name).write_text(text[:n], encoding="utf-8")
        made[name] = n
    big = a.out / f"stdlib-{a.big_mb:g}mb.txt"
    made[big.name] = write_stdlib(big, int(a.big_mb * 1e6))
    if a.huge_mb:
        huge = a.out / f"stdlib-x{a.huge_mb:g}mb.txt"
        made[huge.name] = write_stdlib(huge, int(a.huge_mb * 1e6), repeat=True)
    for name, n in made.items():
        print(f"{a.out / name}\t{n:,}")


if __name__ == "__main__":
    main()
