#!/usr/bin/env bash
# arm64, tested on x86, from Python: the kernel tests (test_isa, test_kernels,
# test_kernels_hypothesis, test_sample, test_dropout, and test_bf16: qemu's default CPU has
# FEAT_BF16, so the BFDOT kernel runs there) run under qemu-aarch64 with a Debian
# bookworm arm64 root filesystem's python3, NumPy and SciPy, on every tier an arm64 build
# has (scalar and NEON; the tests parametrize over isa.available()). arm64.sh checks the
# C code alone; this checks the extension modules as Python imports and calls them.
# The extensions are built on the host (fast): setup.py's own Extension list and Cython
# directives (its setup() is not run), compiled with aarch64-linux-gnu-gcc with the flags
# a native build in the root filesystem would get (its sysconfig CFLAGS, then setup.py's),
# into a temporary copy of the package; the source tree gets no .c or .so files.
# The root filesystem (python3 + numpy, scipy, pytest, hypothesis, click, tqdm,
# threadpoolctl: ~700 MB) is made once by mmdebstrap --variant=extract (unpacks the .debs
# and runs no arm64 maintainer scripts, so no binfmt or chroot is needed) and kept in
# $CHARRNN_ARM64_ROOT (default /var/tmp/charrnn-arm64-root); safetensors, not in bookworm,
# is its aarch64 wheel from PyPI unpacked into it. Needs root (apt-get, mmdebstrap), a host
# Python with Cython and setuptools ($PYTHON, default python3) and, the first time, the
# Debian mirror and PyPI. Extra arguments go to pytest (e.g. -x, -k lstm).
# Time on a 2-core x86 machine (EPYC, busy, nice 19): ~30 s for the root filesystem
# (694 MB), ~3 min to build, ~6 min for the ~800 tests (hypothesis at its full 100
# examples); ~10 min in all. Exit 0 = pass.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
root=${CHARRNN_ARM64_ROOT:-/var/tmp/charrnn-arm64-root}
py=${PYTHON:-python3}
start=$SECONDS

need=()
command -v mmdebstrap >/dev/null || need+=(mmdebstrap)
command -v qemu-aarch64 >/dev/null || need+=(qemu-user)
command -v aarch64-linux-gnu-gcc >/dev/null || need+=(gcc-aarch64-linux-gnu libc6-dev-arm64-cross)
if ((${#need[@]})); then
    echo "arm64_python.sh: installing ${need[*]}" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
"$py" -c "import Cython, setuptools" || { echo "arm64_python.sh: $py needs Cython and setuptools (set PYTHON=...)" >&2; exit 2; }

if [[ ! -e $root/.charrnn-complete ]]; then
    echo "+ mmdebstrap bookworm arm64 -> $root" >&2
    rm -rf "$root" "$root.partial"
    nice -n 19 mmdebstrap --quiet --variant=extract --arch=arm64 \
        --include=libc-bin,python3,python3-dev,python3-numpy,python3-scipy,python3-pytest,python3-hypothesis,python3-click,python3-tqdm,python3-threadpoolctl \
        bookworm "$root.partial" http://deb.debian.org/debian
    # What the maintainer scripts would have made: the BLAS/LAPACK alternatives NumPy and
    # SciPy link (OpenBLAS), and ld.so.cache (else the loader reads the host's, via -L).
    lib=$root.partial/usr/lib/aarch64-linux-gnu
    ln -sfn openblas-pthread/libblas.so.3 "$lib/libblas.so.3"
    ln -sfn openblas-pthread/liblapack.so.3 "$lib/liblapack.so.3"
    ln -sfn openblas-pthread/libopenblas.so.0 "$lib/libopenblas.so.0"
    qemu-aarch64 "$root.partial/sbin/ldconfig" -r "$root.partial"
    nice -n 19 "$py" -m pip download -q --no-deps --only-binary=:all: --platform manylinux2014_aarch64 \
        --python-version 3.11 -d "$root.partial/opt/wheels" "safetensors>=0.4"
    for w in "$root.partial"/opt/wheels/*.whl; do "$py" -m zipfile -e "$w" "$root.partial/opt/site"; done
    touch "$root.partial/.charrnn-complete"
    mv "$root.partial" "$root"
fi

work=$(mktemp -d)
[[ -n ${CHARRNN_ARM64_KEEP:-} ]] && echo "keeping $work" >&2 || trap 'rm -rf "$work"' EXIT
cp -r "$repo"/{charrnn,tests,kernels,setup.py,pyproject.toml} "$work"
echo "+ cythonize + aarch64-linux-gnu-gcc ($(aarch64-linux-gnu-gcc -dumpfullversion)) -> $work/charrnn" >&2
(cd "$work" && env -u CHARRNN_NATIVE -u CHARRNN_ONLY -u CHARRNN_DEBUG nice -n 19 "$py" - "$root" <<'EOF'
import glob, os, runpy, subprocess, sys
import setuptools
root = sys.argv[1]
# scipy/linalg/cython_blas.pxd: the host's SciPy if it has one (pyproject.toml builds with
# scipy>=1.11, whose .pxd says noexcept), else the root filesystem's, and nothing else of it.
os.makedirs("pxd")
os.symlink(f"{root}/usr/lib/python3/dist-packages/scipy", "pxd/scipy")
sys.path.append(os.path.abspath("pxd"))
kw = {}
setuptools.setup = kw.update              # setup.py cythonizes; keep its Extension list
sys.argv = ["setup.py"]
runpy.run_path("setup.py")
conf = {}
exec(open(glob.glob(f"{root}/usr/lib/python3.11/_sysconfigdata__linux_aarch64*.py")[0]).read(), conf)
v = conf["build_time_vars"]
inc = [f"-I{root}/usr/include/python3.11", f"-I{root}/usr/lib/python3/dist-packages/numpy/core/include",
       f"-idirafter{root}/usr/include"]   # <aarch64-linux-gnu/python3.11/pyconfig.h>
for ext in kw["ext_modules"]:
    out = "charrnn/" + ext.name.split(".")[-1] + v["EXT_SUFFIX"]
    cmd = (["aarch64-linux-gnu-gcc"] + v["CFLAGS"].split() + v["CCSHARED"].split()
           + ["-I" + d for d in ext.include_dirs] + inc
           + [f"-D{k}" if val is None else f"-D{k}={val}" for k, val in ext.define_macros]
           + ext.extra_compile_args + ext.sources + v["LDSHARED"].split()[1:] + ["-o", out])
    print("  ", out, " ".join(ext.extra_compile_args), file=sys.stderr)
    subprocess.run(cmd, check=True)
EOF
)

# No binfmt here: a test's subprocess runs sys.executable on the host kernel, so that is
# this script (qemu -0 makes it argv[0]) and not the arm64 python3 itself.
cat >"$work/python3" <<EOF
#!/bin/sh
exec qemu-aarch64 -L "$root" -0 "$work/python3" "$root/usr/bin/python3" "\$@"
EOF
chmod +x "$work/python3"
# PYTHONPATH entries are arm64 paths: /opt/site is in the root, $work only on the host.
export PYTHONPATH=$work:/opt/site OPENBLAS_NUM_THREADS=1 PYTHONDONTWRITEBYTECODE=1
# Linux qemu shows the host's /proc/cpuinfo: never ask arm64 OpenBLAS for an x86 core type.
export CHARRNN_NO_AVX512_BLAS=1
unset CHARRNN_ISA
cd "$work"
nice -n 19 "$work/python3" -m charrnn.cli info | grep -iE "isa|tier|platform|numpy|blas" || true
tiers=$(nice -n 19 "$work/python3" -c "from charrnn.nn import isa; print(isa.current(), 'of', ' '.join(isa.available()))")
echo "+ qemu-aarch64 python3 -m pytest (kernels on: $tiers)" >&2
rc=0
nice -n 19 "$work/python3" -m pytest -q -p no:cacheprovider -rfEs tests/test_isa.py tests/test_kernels.py \
    tests/test_kernels_hypothesis.py tests/test_sample.py tests/test_dropout.py tests/test_bf16.py "$@" \
    | tee "$work/log" || rc=$?
echo "arm64_python.sh: $(tail -n 1 "$work/log" | tr -d '=') on arm64 (qemu-aarch64), tiers $tiers;" \
     "$((SECONDS - start)) s in all; exit $rc"
exit $rc
