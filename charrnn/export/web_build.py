"""Build charrnn/export/webrt/charrnn.wasm, the WebAssembly runtime that `charrnn export
--format html|web` ships, from the project's own C: webrt/core.c plus the element-wise
math, the cells and the sampler of the C export (charrnn/export/c_runtime.py), which this
script writes next to it as shared.h in a scratch directory.

    python -m charrnn.export.web_build            # rebuild the shipped file in place
    python -m charrnn.export.web_build -o X.wasm  # build elsewhere (the tests compare)

Toolchain: clang and wasm-ld (lld) with wasi-libc for memcpy/memset, Debian's packages
clang, lld and wasi-libc. The build is deterministic: no debug information, symbol names
and the producers section stripped, and the source is compiled from a fixed relative
path, so the same clang gives the same bytes wherever it runs.
"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from charrnn.export import c_runtime as rt

HERE = Path(__file__).resolve().parent / "webrt"
WASM = HERE / "charrnn.wasm"
CFLAGS = ["--target=wasm32-wasi", "-std=c99", "-O3", "-msimd128", "-mbulk-memory",
          "-ffp-contract=off", "-fno-ident", "-Wall", "-Wextra", "-Werror",
          "-Wno-unused-function"]
# wasm-ld directly, not through clang: clang's driver would add compiler-rt's builtins,
# which the runtime does not need and Debian ships in another package.
LDFLAGS = ["--no-entry", "--strip-all", "--gc-sections", "--stack-first",
           "-z", "stack-size=65536"]


def shared_header():
    """The C export's math, cells (renamed cr_cell_<cell>) and sampler."""
    cells = "".join(rt.CELLS[c].replace("cr_cell(", f"cr_cell_{c}(") for c in rt.CELLS)
    return ("/* written by charrnn/export/web_build.py from charrnn/export/c_runtime.py */\n"
            + rt.MATH + cells + rt.SAMPLER)


def tools():
    """clang and wasm-ld, or an error naming the Debian packages."""
    missing = [t for t in ("clang", "wasm-ld") if shutil.which(t) is None]
    if not Path("/usr/lib/wasm32-wasi/libc.a").exists() and not os.environ.get("WASI_SYSROOT"):
        missing.append("wasi-libc")
    if missing:
        raise RuntimeError(f"cannot build the wasm runtime: {', '.join(missing)} missing "
                           "(Debian: apt-get install -y clang lld wasi-libc)")
    return shutil.which("clang"), shutil.which("wasm-ld")


def build(out=WASM):
    """Compile core.c (+ shared.h) into `out`; returns out."""
    clang, wasm_ld = tools()
    sysroot = os.environ.get("WASI_SYSROOT")
    libc = Path(sysroot or "/usr", "lib", "wasm32-wasi", "libc.a") if not sysroot \
        else Path(sysroot, "lib", "wasm32-wasi", "libc.a")
    with tempfile.TemporaryDirectory(prefix="charrnn-wasm-") as tmp:
        shutil.copy(HERE / "core.c", Path(tmp) / "core.c")
        (Path(tmp) / "shared.h").write_text(shared_header())
        flags = [f"--sysroot={sysroot}"] if sysroot else []
        for cmd in ([clang, *CFLAGS, *flags, "-c", "core.c", "-o", "core.o"],
                    [wasm_ld, *LDFLAGS, "core.o", str(libc), "-o", "out.wasm"]):
            r = subprocess.run(cmd, cwd=tmp, capture_output=True, text=True)
            if r.returncode != 0:
                raise RuntimeError(f"{Path(cmd[0]).name} failed:\n" + r.stderr[-4000:])
        data = (Path(tmp) / "out.wasm").read_bytes()
    Path(out).write_bytes(data)
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-o", "--output", default=str(WASM), help="where to write the .wasm")
    args = ap.parse_args(argv)
    try:
        build(args.output)
    except RuntimeError as e:
        sys.exit(f"web_build: {e}")
    print(f"wrote {args.output} ({Path(args.output).stat().st_size:,} bytes)")


if __name__ == "__main__":
    main()
