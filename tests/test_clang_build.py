"""The package built by Clang (CC=clang) passes the kernel tests on every tier: no
GCC-only construct outside a guard. Builds into a temporary copy of the source tree, as
tests/test_debug_build.py does, and checks that the copy really was compiled by Clang."""
import os
import shutil
import sys

import pytest

from test_debug_build import REPO, _copy_source_tree, _environment, _run

EXTENSIONS = ["_isa", "_ops", "_twins", "_lstm", "_gru", "_rnn", "_table", "_sample", "_dropout",
              "_align"]
TESTS = ["test_kernels.py", "test_isa.py", "test_lookup.py", "test_sample.py", "test_reference.py",
         "test_graphones.py"]

CHECK_AND_TEST = """
import sys
from pathlib import Path
import charrnn, charrnn._isa, pytest
if not Path(charrnn.__file__).resolve().is_relative_to(Path.cwd().resolve()):
    sys.exit(f"imported charrnn from {charrnn.__file__}, not from the clang copy in {Path.cwd()}")
if not charrnn._isa.compiler().startswith("clang"):
    sys.exit(f"charrnn._isa was built by {charrnn._isa.compiler()}, not clang")
sys.exit(pytest.main(sys.argv[1:]))
"""


@pytest.fixture(scope="module")
def clang_copy(tmp_path_factory):
    if os.environ.get("CHARRNN_TEST_WHEEL"):
        pytest.skip("testing an installed wheel (CHARRNN_TEST_WHEEL): no rebuild from source")
    if not ((REPO / "setup.py").is_file() and (REPO / "kernels").is_dir()):
        pytest.skip(f"no source tree at {REPO} to build from")
    pytest.importorskip("Cython", reason="building the extensions needs Cython")
    if shutil.which("clang") is None:
        if os.environ.get("CI"):
            pytest.fail("clang is missing in CI: .ci/run should install it")
        pytest.skip("clang not installed")
    root = tmp_path_factory.mktemp("clang-build")
    _copy_source_tree(root, TESTS)
    env = _environment(root)
    env.update(CC="clang", LDSHARED="clang -shared", CHARRNN_ONLY=",".join(EXTENSIONS))
    code, out = _run([sys.executable, "setup.py", "build_ext", "--inplace"], root, env)
    if code != 0:
        pytest.fail(f"clang build failed (exit {code}):\n{out}", pytrace=False)
    return root


def test_kernel_tests_pass_on_clang_build(clang_copy):
    args = [sys.executable, "-c", CHECK_AND_TEST, "-q", "-p", "no:cacheprovider"]
    args += [str(clang_copy / "tests" / name) for name in TESTS]
    env = _environment(clang_copy)
    env.pop("CHARRNN_ISA", None)
    code, out = _run(args, clang_copy, env)
    assert code == 0, f"kernel tests on the clang build failed (exit {code}):\n{out}"
    print(out.strip().splitlines()[-1])
