"""charrnn export --format c: the file compiles as strict C99 (and for a Cortex-M4), and the
program it makes writes what `charrnn sample` writes, for the same seed."""
import os
import re
import shutil
import subprocess

import numpy as np
import pytest
from click.testing import CliRunner

import charrnn
from charrnn.cli import main
from charrnn.model import CharRNN
from export_common import HELD_OUT, random_model, trained_run

STRICT = ["-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic"]
# .ci/run installs every tool these tests use and sets this, so that there they fail
# instead of skipping when a tool is missing.
REQUIRED = os.environ.get("CHARRNN_REQUIRE_TOOLS") == "1"


def tool(name):
    path = shutil.which(name)
    if path is None:
        msg = f"{name} not installed (Debian: apt-get install -y " \
              f"{'gcc-arm-none-eabi' if 'arm' in name else 'gcc'})"
        pytest.fail(msg) if REQUIRED else pytest.skip(msg)
    return path


def build(src, exe, *flags, cc="cc", libs=("-lm",)):
    r = subprocess.run([tool(cc), *STRICT, "-O2", *flags, str(src), "-o", str(exe), *libs],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-3000:]
    return exe


def program(model, tmp_path, name="m", int8=False):
    src = charrnn.export_c(model, tmp_path / f"{name}.c", int8=int8)
    return build(src, tmp_path / name, "-DCHARRNN_MAIN")


def run(exe, *args, check=True):
    r = subprocess.run([str(exe), *map(str, args)], capture_output=True)
    if check:
        assert r.returncode == 0, r.stderr
    return r


def sample_cli(run_dir, *args):
    r = CliRunner().invoke(main, ["sample", str(run_dir), *map(str, args)])
    assert r.exit_code == 0, r.output
    return r.output


# ---- the same text as charrnn ----------------------------------------------------------

def test_greedy_output_equals_charrnn_sample_temp_0(tmp_path):
    rd = trained_run()
    exe = tmp_path / "model"
    src = tmp_path / "model.c"
    r = CliRunner().invoke(main, ["export", str(rd), "--format", "c", "-o", str(src)])
    assert r.exit_code == 0, r.output
    build(src, exe, "-DCHARRNN_MAIN")
    for prime in ["ROMEO:", ""]:
        want = sample_cli(rd, "--temp", 0, "--length", 300, "--prime", prime)
        got = run(exe, "--temp", 0, "--length", 300, "--prime", prime).stdout.decode()
        assert got == want
        assert len(set(got)) > 5


def test_seeded_temperature_1_reproduces_charrnn_sample_char_for_char(tmp_path):
    rd = trained_run()
    exe = program(charrnn.load(rd), tmp_path)
    outs = set()
    for seed in [1, 2, 12345678901234567890]:
        want = sample_cli(rd, "--seed", seed, "--length", 1000, "--prime", "KING:")
        got = run(exe, "--seed", seed, "--length", 1000, "--prime", "KING:").stdout.decode()
        assert got == want, seed
        outs.add(got)
    assert len(outs) == 3                          # the seeds do give different texts


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
@pytest.mark.parametrize("embed", [8, 40])         # without and with the layer-0 table
def test_every_cell_and_option_reproduces_charrnn(cell, embed, tmp_path):
    model = random_model(cell, 2, embed=embed)
    exe = program(model, tmp_path)
    cases = [dict(temperature=0), dict(temperature=1.0, seed=5),
             dict(temperature=0.7, seed=9, top_k=3), dict(temperature=1.3, seed=2, top_p=0.8),
             dict(temperature=0.9, seed=4, top_k=10, top_p=0.5)]
    for opts in cases:
        want = model.generate(prime="The ", length=300, **opts) + "\n"
        args = ["--prime", "The ", "--length", 300, "--temp", opts["temperature"]]
        for k, flag in [("seed", "--seed"), ("top_k", "--top-k"), ("top_p", "--top-p")]:
            if k in opts:
                args += [flag, opts[k]]
        assert run(exe, *args).stdout.decode() == want, opts


def test_non_ascii_vocabulary_and_prime(tmp_path):
    vocab = list("aé→😀 \n")
    model = CharRNN(dict(cell="gru", hidden=16, layers=1, embed=4, vocab_size=6), vocab, seed=1)
    for p in model.params.values():
        p *= 4
    exe = program(model, tmp_path)
    for prime in ["é😀a", ""]:
        want = model.generate(prime=prime, length=200, temperature=1, seed=3) + "\n"
        assert run(exe, "--prime", prime, "--length", 200, "--seed", 3).stdout.decode() == want
    assert len(set(want)) >= 4


def test_byte_level_model(tmp_path):
    vocab = [chr(b) for b in (10, 32, 97, 98, 0xc3, 0xa9)]
    cfg = dict(cell="lstm", hidden=16, layers=1, embed=4, vocab_size=6, encoding="bytes")
    model = CharRNN(cfg, vocab, seed=2)
    exe = program(model, tmp_path)
    from charrnn.generate.sampler import Sampler
    ids = Sampler(model.params, model.config, model.vocab)
    got = run(exe, "--prime", "ab", "--length", 100, "--temp", 0).stdout
    want = model.generate(prime="ab", length=100, temperature=0)
    assert got.decode("utf-8", "replace") == want + "\n"
    assert ids.bytes


# ---- int8 --------------------------------------------------------------------------------

def test_int8_validation_loss_rises_at_most_2_percent(tmp_path):
    model = charrnn.load(trained_run())
    val = tmp_path / "val.txt"
    val.write_text(HELD_OUT[:20_000], encoding="utf-8")
    loss = {}
    for int8 in (False, True):
        exe = program(model, tmp_path, f"m{int(int8)}", int8=int8)
        out = run(exe, "--eval", val).stdout.decode()
        loss[int8] = float(re.match(r"loss ([0-9.]+) nats/char over 19999 characters", out)[1])
    # the float export scores the text as charrnn does (one stream, state carried)
    x = np.array([model.vocab.index(c) for c in HELD_OUT[:20_000]], np.int32)
    total, state = 0.0, None
    for a in range(0, len(x) - 1, 1000):
        xs, ys = x[a:a + 1000], x[a + 1:a + 1001]
        xs = xs[:len(ys)]
        part, state = model.loss(xs[:, None], ys[:, None], state)
        total += part * len(ys)
    assert abs(loss[False] - total / (len(x) - 1)) < 1e-4
    assert loss[False] < 0.6 * np.log(len(model.vocab))          # a model that learned
    assert loss[False] <= loss[True] * 1.001 and loss[True] <= 1.02 * loss[False], loss
    src = (tmp_path / "m1.c").read_text()
    assert "static const int8_t cr_A_wr0_q[" in src and "static const float cr_A_wr0_q" not in src


def test_int8_quantization_is_per_row():
    from charrnn.export.c_source import quantize_rows
    W = np.array([[0.5, -1.0, 0.25], [100.0, 3.0, -50.0], [0.0, 0.0, 0.0]])
    q, s = quantize_rows(W)
    assert q.dtype == np.int8 and s.dtype == np.float32
    assert np.array_equal(np.abs(q).max(axis=1), [127, 127, 0])
    # each row within half its own step: a small row keeps its precision next to a big one
    err = np.abs(s[:, None].astype(np.float64) * q - W)
    assert (err <= s[:, None] * (0.5 + 1e-5)).all()
    assert err[0].max() < 0.004 and np.array_equal(q[2], [0, 0, 0])


# ---- the C file itself -------------------------------------------------------------------

@pytest.mark.parametrize("int8", [False, True])
@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_library_compiles_alone_and_as_two_models_side_by_side(cell, int8, tmp_path):
    """The file is its own header (CHARRNN_DECLARATIONS_ONLY); --prefix renames every public
    symbol, so two models link into one program."""
    for prefix in ("charrnn", "small"):
        m = random_model(cell, 2 if prefix == "charrnn" else 1)
        charrnn.export_c(m, tmp_path / f"{prefix}.c", int8=int8, prefix=prefix)
    (tmp_path / "app.c").write_text("""
#define CHARRNN_DECLARATIONS_ONLY
#define SMALL_DECLARATIONS_ONLY
#include "charrnn.c"
#include "small.c"
#include <stdio.h>
int main(void)
{
    static charrnn_state a; static charrnn_sampler sa;
    static small_state b; static small_sampler sb;
    int i, x = CHARRNN_START, y = SMALL_START;
    charrnn_reset(&a); small_reset(&b);
    charrnn_sampler_init(&sa, 7, 1.0, 0, 1.0); small_sampler_init(&sb, 7, 0.5, 3, 0.9);
    for (i = 0; i < 50; i++) {
        x = charrnn_sample(&sa, charrnn_step(&a, x));
        y = small_sample(&sb, small_step(&b, y));
        printf("%d %d\\n", x, y);
    }
    return 0;
}
""")
    exe = tmp_path / "app"
    r = subprocess.run([tool("cc"), *STRICT, "-O2", "-I", str(tmp_path), str(tmp_path / "app.c"),
                        str(tmp_path / "charrnn.c"), str(tmp_path / "small.c"), "-o", str(exe)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-3000:]
    pairs = run(exe).stdout.decode().split()
    assert len(pairs) == 100 and len(set(pairs[::2])) > 3


def test_bad_program_arguments_are_one_line_errors(tmp_path):
    exe = program(random_model("gru", 1), tmp_path)
    for args, needle in [(["--frobnicate", "1"], "unknown option"),
                         (["--seed", "-3"], "bad value for --seed"),
                         (["--temp", "hot"], "bad value for --temp"),
                         (["--length"], "missing value"),
                         (["--prime", "\u4e2d"], "not in the model's vocabulary"),
                         (["--top-p", "0"], "bad value for --top-p")]:
        r = run(exe, *args, check=False)
        err = r.stderr.decode()
        assert r.returncode == 2 and err.count("\n") == 1 and needle in err, (args, err)
        assert r.stdout == b""
    r = run(exe, "--eval", tmp_path / "missing.txt", check=False)
    assert r.returncode == 1 and "cannot open" in r.stderr.decode()


def test_bad_prefix_is_refused(tmp_path):
    with pytest.raises(charrnn.ConfigError, match="C identifier"):
        charrnn.export_c(random_model("gru", 1), tmp_path / "m.c", prefix="my-model")
    r = CliRunner().invoke(main, ["export", str(trained_run()), "--format", "c", "--prefix",
                                  "1x", "-o", str(tmp_path / "m.c")])
    assert r.exit_code == 1 and r.output.count("\n") == 1 and "C identifier" in r.output


def test_prefix_renames_the_main_macro_in_the_header_too():
    """Issue 27, item 18: the comment tells the macro the code tests."""
    from charrnn.export.c_source import c_source
    src = c_source(random_model("gru", 1), prefix="tiny")
    assert "#ifdef TINY_MAIN" in src and "-DTINY_MAIN" in src
    assert "CHARRNN_MAIN" not in src and "charrnn_" not in src


# ---- a microcontroller: Cortex-M4, 256 KB flash, 64 KB RAM -------------------------------

FIRMWARE = """
#define CHARRNN_DECLARATIONS_ONLY
#include "model.c"
/* A firmware's use of the model: state and sampler in RAM, weights in flash. */
static charrnn_state st;
static charrnn_sampler sp;
volatile int out;
int main(void)
{
    int id = CHARRNN_START;
    charrnn_reset(&st);
    charrnn_sampler_init(&sp, 1, 0.8, 0, 1.0);
    for (;;) {
        id = charrnn_sample(&sp, charrnn_step(&st, id));
        out = id;
    }
}
"""


def arm_size(path):
    r = subprocess.run([tool("arm-none-eabi-size"), str(path)], capture_output=True, text=True,
                       check=True)
    text, data, bss = map(int, r.stdout.splitlines()[1].split()[:3])
    return text, data, bss


def test_cortex_m4_build_of_a_1x128_gru_int8_fits_256k_flash_64k_ram(tmp_path):
    model = charrnn.load(trained_run())                    # 1x128 GRU, 65-ish characters
    assert (model.cfg.cell, model.cfg.layers, model.cfg.hidden) == ("gru", 1, 128)
    charrnn.export_c(model, tmp_path / "model.c", int8=True)
    (tmp_path / "fw.c").write_text(FIRMWARE)
    arm = ["-mcpu=cortex-m4", "-mthumb", "-Os"]
    obj = tmp_path / "model.o"
    r = subprocess.run([tool("arm-none-eabi-gcc"), *STRICT, *arm, "-c", str(tmp_path / "model.c"),
                        "-o", str(obj)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-3000:]
    text, data, bss = arm_size(obj)
    assert data == 0 and bss == 0                         # no state of its own: the caller's
    elf = tmp_path / "fw.elf"
    r = subprocess.run([tool("arm-none-eabi-gcc"), *STRICT, *arm, "-I", str(tmp_path),
                        str(tmp_path / "fw.c"), str(obj), "--specs=nosys.specs", "-o", str(elf)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-3000:]
    text, data, bss = arm_size(elf)
    assert text + data <= 256 * 1024, (text, data)
    assert data + bss <= 64 * 1024 - 8 * 1024, (data, bss)   # leaves 8 KB for the stack
