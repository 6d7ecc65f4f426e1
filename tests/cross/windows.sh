#!/usr/bin/env bash
# Windows x64, tested on Linux: the kernels' C code (every x86 tier: scalar, AVX2, and
# AVX-512 where the CPU has it) cross-compiled with mingw-w64 (x86_64-w64-mingw32-gcc) at
# the package's -O3 and run under Wine (wine64) by the C harness (tests/cross/harness.c).
# Besides everything the harness checks natively, a Windows build calls every kernel of
# each tier through a probe that fills the registers the Windows x64 convention makes
# callee-saved (rbx, rbp, rdi, rsi, r12-r15, xmm6-xmm15) and checks them afterwards, and
# the _WIN32 paths of the headers are the ones compiled. MSVC itself is not verified here.
# Wine runs in a fresh prefix in a temporary directory (its first start takes a few
# seconds), its server stopped at the end. Installs gcc-mingw-w64-x86-64 and wine64 with
# apt-get when missing. Exit 0 = pass.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)

find_wine() {
    # Debian's wine64 package puts wine64 in /usr/lib/wine (the wine package's launcher,
    # /usr/bin/wine, runs it when no 32-bit Wine is installed)
    command -v wine64 || { [[ -x /usr/lib/wine/wine64 ]] && echo /usr/lib/wine/wine64; } \
        || command -v wine || true
}

need=()
command -v x86_64-w64-mingw32-gcc >/dev/null || need+=(gcc-mingw-w64-x86-64)
[[ -n $(find_wine) ]] || need+=(wine64)
if ((${#need[@]})); then
    sudo=""
    [[ $(id -u) -eq 0 ]] || sudo="sudo"
    echo "windows.sh: installing ${need[*]}" >&2
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null
fi
wine=$(find_wine)
[[ -n $wine ]] || { echo "windows.sh: no wine64 after installing it" >&2; exit 2; }
wineserver=$(dirname "$wine")/wineserver
[[ -x $wineserver ]] || wineserver=$(command -v wineserver || true)

out=$(mktemp -d)
export WINEPREFIX=$out/prefix WINEDEBUG=-all WINEDLLOVERRIDES="mscoree,mshtml="
cleanup() {
    [[ -n $wineserver ]] && "$wineserver" -k 2>/dev/null || true
    rm -rf "$out"
}
trap cleanup EXIT
x86_64-w64-mingw32-gcc -std=c99 -O3 -fno-math-errno -fno-trapping-math -Wall -Wextra -Werror \
    -Wno-unused-function -static -I"$repo/kernels" "$here/harness.c" -o "$out/harness.exe" -lm
echo "+ $(basename "$wine") harness.exe   (x86_64-w64-mingw32, $(x86_64-w64-mingw32-gcc -dumpversion); $("$wine" --version 2>/dev/null || echo wine))"
# Wine's own messages (creating the prefix) go to stderr; the harness prints to stdout.
# The harness's stdout through Wine has CRLF line ends: strip the CR.
set +e
"$wine" "$out/harness.exe" 2>"$out/wine.log" | tr -d '\r'
rc=${PIPESTATUS[0]}
set -e
if ((rc != 0)); then
    echo "windows.sh: harness.exe exited $rc under Wine; Wine said:" >&2
    tail -n 20 "$out/wine.log" >&2
fi
exit "$rc"
