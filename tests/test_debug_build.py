"""The kernel tests again, against a debug build of the extensions (CHARRNN_DEBUG=1):
Cython bounds and initialisation checks compiled in, -O0 -g. An index past the end of
an array inside a kernel then raises IndexError instead of reading or writing memory
that is not the array's, which the optimised build cannot notice.

The build goes into a temporary copy of the source tree, so the extensions in the working
tree are left alone, and the tests run in a subprocess whose `import charrnn` finds that
copy. Skipped where there is no source tree (tests run against an installed package).
"""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
# what the tests below import
EXTENSIONS = ["_isa", "_ops", "_twins", "_lstm", "_gru", "_rnn", "_table", "_sample", "_dropout",
              "_bidir", "_attn", "_decoder", "_decode", "_align"]
TESTS = ["test_kernels.py", "test_reference.py", "test_kernels_hypothesis.py", "test_lookup.py",
         "test_bidirectional.py", "test_seq2seq.py", "test_seq2seq_decode.py",
         "test_graphones.py"]
TIMEOUT = 900  # seconds, for the build and for the test run

# Runs in the subprocess: makes sure it tests the debug copy, then runs pytest.
CHECK_AND_TEST = """
import sys
from pathlib import Path
import charrnn, charrnn._isa, pytest
if not Path(charrnn.__file__).resolve().is_relative_to(Path.cwd().resolve()):
    sys.exit(f"imported charrnn from {charrnn.__file__}, not from the debug copy in {Path.cwd()}")
if not charrnn._isa.DEBUG_BUILD:
    sys.exit("charrnn._isa.DEBUG_BUILD is False: the copy was not built with CHARRNN_DEBUG=1")
sys.exit(pytest.main(sys.argv[1:]))
"""


def _run(args, cwd, env):
    """Runs args; returns (exit code, combined stdout and stderr)."""
    p = subprocess.run(args, cwd=cwd, env=env, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True, timeout=TIMEOUT)
    return p.returncode, p.stdout


def _without_build_products(directory, names):
    # Cython's generated .c files must go too: cythonize reuses a .c newer than its .pyx,
    # which would compile the optimised build's code without the bounds checks (and its
    # shared utility module, _cyutility.c, which has no .pyx).
    pyx = {n[:-4] for n in names if n.endswith(".pyx")} | {"_cyutility"}
    return [n for n in names
            if n in ("__pycache__", "build") or n.endswith((".so", ".pyd"))
            or (n.endswith(".c") and n[:-2] in pyx)]


def _copy_source_tree(dst, tests=TESTS):
    for name in ["setup.py", "pyproject.toml", "README.md", "MANIFEST.in"]:
        if (REPO / name).exists():
            shutil.copy2(REPO / name, dst / name)
    for name in ["kernels", "charrnn", "data"]:
        if (REPO / name).is_dir():
            shutil.copytree(REPO / name, dst / name, ignore=_without_build_products)
    (dst / "tests").mkdir()
    for name in list(tests) + ["conftest.py", "test_reference.py"]:
        if (REPO / "tests" / name).exists():
            shutil.copy2(REPO / "tests" / name, dst / "tests" / name)


def _environment(root):
    env = dict(os.environ)
    # `import charrnn` must find the copy whatever the caller's PYTHONPATH or
    # PYTHONSAFEPATH; the subprocess checks that it did.
    env["PYTHONPATH"] = os.pathsep.join([str(root)] + [p for p in [env.get("PYTHONPATH")] if p])
    return env


@pytest.fixture(scope="module")
def debug_copy(tmp_path_factory):
    if os.environ.get("CHARRNN_TEST_WHEEL"):
        pytest.skip("testing an installed wheel (CHARRNN_TEST_WHEEL): no rebuild from source")
    if not ((REPO / "setup.py").is_file() and (REPO / "kernels").is_dir()):
        pytest.skip(f"no source tree at {REPO} (setup.py and kernels/) to build from")
    # Cython is in the test extra (pip install ".[test]"), so this runs in CI.
    pytest.importorskip("Cython", reason="building the debug extensions needs Cython")
    root = tmp_path_factory.mktemp("debug-build")
    _copy_source_tree(root)
    env = _environment(root)
    env.update(CHARRNN_DEBUG="1", CHARRNN_ONLY=",".join(EXTENSIONS))
    code, out = _run([sys.executable, "setup.py", "build_ext", "--inplace"], root, env)
    if code != 0:
        pytest.fail(f"debug build failed (exit {code}):\n{out}", pytrace=False)
    missing = [n for n in EXTENSIONS if not (root / "kernels" / f"{n}.c").exists()]
    assert not missing, f"the debug build did not run Cython on {missing}:\n{out}"
    return root


def test_kernel_tests_pass_on_bounds_checked_build(debug_copy):
    args = [sys.executable, "-c", CHECK_AND_TEST, "-q", "-p", "no:cacheprovider"]
    args += [str(debug_copy / "tests" / name) for name in TESTS]
    code, out = _run(args, debug_copy, _environment(debug_copy))
    assert code == 0, f"kernel tests on the debug build failed (exit {code}):\n{out}"
