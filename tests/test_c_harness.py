"""The kernels' C code without Python (tests/cross/harness.c): natively with GCC and with
Clang on every tier this CPU has, cross-compiled for arm64 under qemu-aarch64
(tests/cross/arm64.sh, NEON and its BF16 kernel, on a CPU with FEAT_BF16 and an Armv8.0
one without) and for Windows x64 under Wine (tests/cross/windows.sh,
mingw-w64: every x86 tier, and the Windows calling convention's callee-saved registers
around every kernel); every tier against double precision, every SIMD tier against the
scalar tier's results on the same inputs. And the x86 AVX512_BF16 kernel on SIMDe's
portable AVX-512 (tests/cross/harness_simde.c), which any x86 CPU runs. CI installs clang,
the cross compilers, qemu-user, Wine and SIMDe (.ci/run); elsewhere a missing tool skips,
in CI (CI or CHARRNN_REQUIRE_TOOLS=1) it fails."""
import os
import platform
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from charrnn import _isa
from charrnn.nn import isa

REPO = Path(__file__).resolve().parent.parent
HARNESS = REPO / "tests" / "cross" / "harness.c"
FLAGS = ["-std=c99", "-O3", "-fno-math-errno", "-fno-trapping-math", "-Wall", "-Wextra",
         "-Werror", "-Wno-unused-function"]

pytestmark = pytest.mark.skipif(
    not (REPO / "kernels" / "dispatch.h").exists() or bool(os.environ.get("CHARRNN_TEST_WHEEL")),
    reason="no source tree (kernels/) to compile, or testing an installed wheel")


def _required():
    return bool(os.environ.get("CI")) or os.environ.get("CHARRNN_REQUIRE_TOOLS") == "1"


def _need(tool):
    if shutil.which(tool) is None:
        if _required():
            pytest.fail(f"{tool} is missing in CI: .ci/run should install it")
        pytest.skip(f"{tool} not installed")


def _closing(out):
    m = re.search(r"^(\d+) passed, (\d+) failed$", out, re.M)
    assert m, out
    return int(m.group(1)), int(m.group(2))


def _vs_scalar(out):
    """The largest difference from the scalar tier (as a fraction of its bound) and how
    many scalar results each other tier was compared with."""
    m = re.search(r"^largest difference from the scalar tier: ([\d.]+) of its bound "
                  r"\((\d+) values\)$", out, re.M)
    assert m, out
    return float(m.group(1)), int(m.group(2))


def _native_bf16_on_x86(out, amx_expected=False):
    """On x86 the AVX512_BF16 kernel runs every bf16 case a second time where the CPU has
    it (within its bound of the portable kernel), and none where it has not (then only
    tests/cross/harness_simde.c runs it, on SIMDe)."""
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return
    m = re.search(r"^bf16: cpu (yes|no); native kernel cases: (\d+), largest difference "
                  r"from the portable kernel: ([\d.]+) of its bound$", out, re.M)
    assert m, out
    if m.group(1) == "yes":
        assert int(m.group(2)) > 500 and float(m.group(3)) <= 1, out
    else:
        assert int(m.group(2)) == 0, out
    # AMX: every native case runs on its tiles too where the CPU has AMX-BF16 and the OS
    # allows it (Linux: not under Wine, whose harness has no leave to ask)
    m = re.search(r"^bf16 amx: (yes|no); cases on AMX tiles: (\d+), weight-gradient cases: "
                  r"(\d+)$", out, re.M)
    assert m, out
    if amx_expected:
        assert m.group(1) == "yes" and int(m.group(2)) > 500 and int(m.group(3)) > 80, out
    else:
        assert int(m.group(2)) == 0 and int(m.group(3)) == 0, out


def _compiled_vdpbf16ps(exe):
    """The AVX512_BF16 kernel is compiled into an x86 build (its 8- and 4-row tiles: 24
    VDPBF16PS), whether or not this CPU can run it."""
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return
    _need("objdump")
    dis = subprocess.run(["objdump", "-d", str(exe)], capture_output=True, text=True,
                         check=True).stdout
    assert dis.count("vdpbf16ps") >= 24


@pytest.mark.parametrize("cc", ["gcc", "clang"])
def test_native_harness_on_every_tier(cc, tmp_path):
    _need(cc)
    exe = tmp_path / "harness"
    subprocess.run([cc, *FLAGS, f"-I{REPO / 'kernels'}", str(HARNESS), "-o", str(exe), "-lm"],
                   check=True, capture_output=True, text=True)
    p = subprocess.run([str(exe)], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stdout
    ok, bad = _closing(p.stdout)
    assert bad == 0 and ok > 1000
    assert re.findall(r"^tier (\w+) +ok$", p.stdout, re.M) == isa.available()
    assert f"built with {cc}" in p.stdout
    worst, values = _vs_scalar(p.stdout)
    assert worst <= 1 and values > 100000
    if len(isa.available()) > 1:   # a SIMD tier was compared, and its sums differ (FMA)
        assert worst > 0
    _native_bf16_on_x86(p.stdout, amx_expected=_isa.amx())
    _compiled_vdpbf16ps(exe)


def test_arm64_harness_under_qemu():
    if not (shutil.which("aarch64-linux-gnu-gcc") and shutil.which("qemu-aarch64")):
        if os.geteuid() != 0 and not os.environ.get("CI"):
            pytest.skip("no aarch64 cross compiler / qemu-user, and not root to install them")
    p = subprocess.run(["bash", str(REPO / "tests" / "cross" / "arm64.sh")],
                       capture_output=True, text=True, timeout=1200)
    assert p.returncode == 0, p.stdout + p.stderr
    # one section per run: "+ qemu-aarch64 -cpu CPU harness[-clang] ..."
    runs = re.split(r"^\+ \S*qemu-aarch64\S* -cpu (\S+) (\S+)", p.stdout, flags=re.M)[1:]
    runs = {(cpu, exe): out for cpu, exe, out in zip(runs[0::3], runs[1::3], runs[2::3])}
    want = {("max", "harness"), ("cortex-a53", "harness")}
    if shutil.which("clang") or os.environ.get("CI"):
        want.add(("max", "harness-clang"))
    assert set(runs) == want, p.stdout
    for (cpu, exe), out in runs.items():
        ok, bad = _closing(out)
        assert bad == 0 and ok > 1000, out
        assert re.findall(r"^tier (\w+) +ok$", out, re.M) == ["scalar", "neon"]
        worst, values = _vs_scalar(out)
        # GCC's scalar tier does not contract a * b + c into FMAs, NEON's does; Clang
        # contracts both, and its tiers agree bit for bit
        assert (0 < worst if exe == "harness" else 0 <= worst) and worst <= 1 and values > 100000
        # FEAT_BF16: -cpu max has it (BFDOT runs on every bf16 case, within its bound of
        # the portable kernel), the Cortex-A53 (Armv8.0) not (the portable kernel only)
        m = re.search(r"^bf16: cpu (yes|no); native kernel cases: (\d+), largest difference "
                      r"from the portable kernel: ([\d.]+) of its bound$", out, re.M)
        assert m, out
        if cpu == "max":
            assert m.group(1) == "yes" and int(m.group(2)) > 500 and 0 < float(m.group(3)) <= 1
        else:
            assert m.group(1) == "no" and int(m.group(2)) == 0


def _wine():
    return shutil.which("wine64") or (os.access("/usr/lib/wine/wine64", os.X_OK)
                                      and "/usr/lib/wine/wine64") or shutil.which("wine")


def test_windows_harness_under_wine():
    if not (shutil.which("x86_64-w64-mingw32-gcc") and _wine()):
        if os.environ.get("CI"):
            pytest.fail("mingw-w64 or wine64 is missing in CI: .ci/run should install them")
        if os.geteuid() != 0:
            pytest.skip("no mingw-w64 / wine64, and not root to install them")
    p = subprocess.run(["bash", str(REPO / "tests" / "cross" / "windows.sh")],
                       capture_output=True, text=True, timeout=900)
    assert p.returncode == 0, p.stdout + p.stderr
    ok, bad = _closing(p.stdout)
    assert bad == 0 and ok > 1000
    # every x86 tier this CPU runs (the Windows build has the same tiers as the native one)
    assert re.findall(r"^tier (\w+) +ok$", p.stdout, re.M) == isa.available()
    assert "built with gcc" in p.stdout
    worst, values = _vs_scalar(p.stdout)
    assert 0 < worst <= 1 and values > 100000
    m = re.search(r"^windows x64: callee-saved registers kept across (\d+) kernel calls$",
                  p.stdout, re.M)
    assert m and int(m.group(1)) >= 20 * len(isa.available()), p.stdout
    _native_bf16_on_x86(p.stdout)


SIMDE_HARNESS = REPO / "tests" / "cross" / "harness_simde.c"


def _need_simde(cc):
    """SIMDe's AVX-512 headers (Debian libsimde-dev), where cc finds them."""
    p = subprocess.run([cc, "-E", "-x", "c", "-", "-o", os.devnull],
                       input="#include <simde/x86/avx512/dpbf16.h>\n", capture_output=True,
                       text=True)
    if p.returncode != 0:
        if _required():
            pytest.fail(f"SIMDe (libsimde-dev) is missing for {cc}: .ci/run should install it")
        pytest.skip("SIMDe (libsimde-dev) not installed")


@pytest.mark.skipif(platform.machine().lower() not in ("x86_64", "amd64"),
                    reason="SIMDe stands in for AVX-512 on x86 only")
@pytest.mark.parametrize("model", ["simde", "sdm"])
@pytest.mark.parametrize("cc", ["gcc", "clang"])
def test_avx512_bf16_kernel_on_simde(cc, model, tmp_path):
    """The AVX512_BF16 micro-kernel's own source, its intrinsics resolved to SIMDe (any
    x86 CPU runs it), on every shape of the float32 and bf16 grids: against double, the
    portable kernel and, with VDPBF16PS as the Intel SDM defines it (model sdm), that
    model's bits exactly. Also reads the probe of SIMDe's VDPBF16PS, so that the
    difference from the SDM stated in docs/internals/kernels.md cannot go stale."""
    _need(cc)
    _need_simde(cc)
    exe = tmp_path / "harness_simde"
    flags = [f for f in FLAGS if f != "-O3"] + ["-O2", "-Wno-psabi"]   # SIMDe passes zmm by value
    if model == "sdm":
        flags.append("-DCR_DPBF16_SDM")
    subprocess.run([cc, *flags, f"-I{REPO / 'kernels'}", str(SIMDE_HARNESS), "-o", str(exe),
                    "-lm"], check=True, capture_output=True, text=True)
    p = subprocess.run([str(exe)], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stdout
    ok, bad = _closing(p.stdout)
    assert bad == 0 and ok > 5000
    m = re.search(rf"^avx512_bf16 kernel \({model}\): (\d+) cases, (\d+) with the portable "
                  r"kernel's bits, largest difference from it: ([\d.]+) of its bound$",
                  p.stdout, re.M)
    assert m, p.stdout
    cases, same, worst = int(m.group(1)), int(m.group(2)), float(m.group(3))
    # the kernel's adds are not the portable kernel's: some results differ, within bound
    assert cases > 1000 and 0 < same < cases and 0 < worst <= 1
    m = re.search(r"^simde vdpbf16ps on (\d+) lanes: even-then-odd (\d+), odd-then-even "
                  r"\(SDM\) (\d+), pair sum (\d+); subnormal input (\w+)$", p.stdout, re.M)
    assert m, p.stdout
    lanes, even, odd, pair = map(int, m.group(1, 2, 3, 4))
    # SIMDe 0.7.4: the two products' rounded sum added to the lane (the SDM: two adds,
    # odd element first) and subnormals kept (the SDM: flushed), as the docs say
    assert pair == lanes and odd < lanes and even < lanes and m.group(5) == "kept"


GEMV_SIMDE = REPO / "tests" / "cross" / "gemv_bf16_simde.c"


@pytest.mark.skipif(platform.machine().lower() not in ("x86_64", "amd64"),
                    reason="SIMDe stands in for AVX-512 on x86 only")
@pytest.mark.parametrize("cc", ["gcc", "clang"])
def test_sampler_bf16_gemv_every_form_on_simde(cc, tmp_path):
    """The sampler's bf16 product (gemv_bf16.h) as the portable loop, the AVX2 loop and
    the AVX-512 loop on SIMDe: every shape of a grid within the float32 bound of double,
    and the same bits from all three (the order of the sums is fixed)."""
    _need(cc)
    _need_simde(cc)
    exe = tmp_path / "gemv_bf16_simde"
    subprocess.run([cc, "-O2", "-mavx2", "-mfma", "-Wall", "-Werror", "-Wno-psabi",
                    "-Wno-unused-function", f"-I{REPO / 'kernels'}", str(GEMV_SIMDE), "-o",
                    str(exe), "-lm"], check=True, capture_output=True, text=True)
    p = subprocess.run([str(exe)], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stdout
    ok, bad = _closing(p.stdout)
    assert bad == 0 and ok > 800
