#!/usr/bin/env bash
# arm64, tested on x86: the kernels' C code (every tier an arm64 build has: scalar and
# NEON, and the NEON tier's BF16 micro-kernel) cross-compiled at the package's -O3 and
# run under qemu-aarch64 by the C harness (tests/cross/harness.c): sgemm on tile edges,
# K = 0, accumulate, gate math and fast math, each tier vs double precision and NEON vs
# scalar; the bf16 products vs double and, on the BF16 kernel, vs the portable one.
# Three runs:
#   gcc,   -cpu max         an Armv9 CPU with FEAT_BF16: the BF16 kernel (BFDOT) runs
#   gcc,   -cpu cortex-a53  Armv8.0, no BF16: the rest of the neon tier still runs, and the
#                           bf16 products fall back to the portable kernel
#   clang, -cpu max         Clang's build of the BF16 kernel's target region
# Installs the cross compiler and qemu-user with apt-get when missing (clang: the clang
# run is left out when it is missing). Exit 0 = every run passed.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)

need=()
command -v aarch64-linux-gnu-gcc >/dev/null || need+=(gcc-aarch64-linux-gnu libc6-dev-arm64-cross)
command -v qemu-aarch64 >/dev/null || command -v qemu-aarch64-static >/dev/null || need+=(qemu-user)
if ((${#need[@]})); then
    sudo=""
    [[ $(id -u) -eq 0 ]] || sudo="sudo"
    echo "arm64.sh: installing ${need[*]}" >&2
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null
fi
qemu=$(command -v qemu-aarch64 || command -v qemu-aarch64-static)

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
flags=(-std=c99 -O3 -fno-math-errno -fno-trapping-math -Wall -Wextra -Werror
       -Wno-unused-function -I"$repo/kernels")
aarch64-linux-gnu-gcc "${flags[@]}" -static "$here/harness.c" -o "$out/harness" -lm
gcc_version=$(aarch64-linux-gnu-gcc -dumpfullversion)
rc=0
for cpu in max cortex-a53; do
    echo "+ $qemu -cpu $cpu harness   (aarch64, gcc $gcc_version)"
    "$qemu" -cpu "$cpu" "$out/harness" || rc=1
done
if command -v clang >/dev/null; then
    # Clang compiles for aarch64 against the cross toolchain's headers; the cross GCC links.
    clang --target=aarch64-linux-gnu -isystem /usr/aarch64-linux-gnu/include "${flags[@]}" \
        -c "$here/harness.c" -o "$out/harness-clang.o"
    aarch64-linux-gnu-gcc -static "$out/harness-clang.o" -o "$out/harness-clang" -lm
    echo "+ $qemu -cpu max harness-clang   (aarch64, $(clang --version | head -n 1))"
    "$qemu" -cpu max "$out/harness-clang" || rc=1
fi
exit $rc
