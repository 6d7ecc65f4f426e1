#!/usr/bin/env bash
# arm64, tested on x86: the kernels' C code (every tier an arm64 build has: scalar and
# NEON) cross-compiled with aarch64-linux-gnu-gcc at the package's -O3 and run under
# qemu-aarch64 by the C harness (tests/cross/harness.c): sgemm on tile edges, K = 0,
# accumulate, gate math and fast math, each tier vs double precision and NEON vs scalar.
# Installs the cross compiler and qemu-user with apt-get when missing. Exit 0 = pass.
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
aarch64-linux-gnu-gcc -std=c99 -O3 -fno-math-errno -fno-trapping-math -Wall -Wextra -Werror \
    -Wno-unused-function -static -I"$repo/kernels" "$here/harness.c" -o "$out/harness" -lm
echo "+ $qemu harness   (aarch64, $(aarch64-linux-gnu-gcc -dumpfullversion))"
"$qemu" "$out/harness"
