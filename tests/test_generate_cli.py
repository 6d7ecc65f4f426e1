"""`charrnn sample` with --beam, --no-repeat, --temp lists, --prime-file, --verbose and
--color, through CliRunner: outputs agree with the Python API, bad values are one-line
usage errors with exit code 2."""
import re

import numpy as np
import pytest
from click.testing import CliRunner

import charrnn
from charrnn.cli import main
from charrnn.io import checkpoint as ck
from charrnn.nn import shapes

VOCAB = list(" \nabcdefghijklmnopqrstuvwxyz.,'")


def small_model(path, seed=0):
    cfg = dict(cell="gru", hidden=32, layers=1, embed=8, vocab_size=len(VOCAB),
               encoding="utf-8")
    rng = np.random.default_rng(seed)
    p = {n: (1.2 * rng.standard_normal(s)).astype(np.float32)
         for n, s in shapes.expected_shapes(cfg).items()}
    ck.save_model(str(path), p, cfg, VOCAB)
    return str(path)


@pytest.fixture
def model(tmp_path):
    return small_model(tmp_path / "m.safetensors")


def run(*args):
    r = CliRunner().invoke(main, ["sample", *map(str, args)], catch_exceptions=False)
    return r


def test_beam_prints_the_best_beams_with_log_probabilities(model):
    m = charrnn.load(model)
    beams = m.beam_search("the ", 50, beam=4, num_results=2, no_repeat=8)
    r = run(model, "--beam", 4, "--num-samples", 2, "--length", 50, "--prime", "the ",
            "--no-repeat", 8)
    assert r.exit_code == 0
    assert r.output == (f"--- beam 1 of 4: log-probability {beams[0].logprob:.3f} "
                        f"({beams[0].score:.4f} per character) ---\n{beams[0].text}\n"
                        f"--- beam 2 of 4: log-probability {beams[1].logprob:.3f} "
                        f"({beams[1].score:.4f} per character) ---\n{beams[1].text}\n")
    r = run(model, "--beam", 4, "--length", 50, "--prime", "the ", "-v")
    assert r.stdout == m.generate("the ", 50, beam=4) + "\n"
    assert "log-probability" in r.stderr and "longest repeated substring" in r.stderr


def test_temperature_sheet(model):
    m = charrnn.load(model)
    texts = m.generate("a", 60, temperature=[0.2, 0.5, 1.0], seed=4, no_repeat=10)
    r = run(model, "--temp", "0.2,0.5,1.0", "--length", 60, "--prime", "a", "--seed", 4,
            "--no-repeat", 10)
    assert r.exit_code == 0
    assert r.output == "".join(f"{'' if j == 0 else chr(10)}--- temperature {t} ---\n"
                               f"{texts[j]}" for j, t in enumerate(["0.2", "0.5", "1"])) + "\n"


def test_prime_file(model, tmp_path):
    f = tmp_path / "start.txt"
    f.write_text("the cat\r\n sat\n", encoding="utf-8")    # taken as is, \r and all
    r = run(model, "--prime-file", f, "--length", 30, "--seed", 1)
    assert r.exit_code == 1 and "'\\r'" in r.output         # not in the vocabulary
    f.write_text("the cat\n sat\n", encoding="utf-8")
    r = run(model, "--prime-file", f, "--length", 30, "--seed", 1)
    assert r.output == charrnn.load(model).generate("the cat\n sat\n", 30, seed=1) + "\n"


def test_verbose_reports_the_longest_repeat(model):
    r = run(model, "--temp", 0, "--length", 300, "-v")
    from charrnn.generate.loops import longest_repeat
    n = longest_repeat(r.stdout[:-1]).length
    assert f"longest repeated substring: {n} characters" in r.stderr
    r = run(model, "--temp", 0, "--length", 300, "-v", "--no-repeat", 12)
    n = int(re.search(r"substring: (\d+) char", r.stderr).group(1))
    assert n < 12


def test_color(model):
    r = run(model, "--color", "--length", 80, "--seed", 2, "--prime", "ab")
    assert r.exit_code == 0 and "\x1b[38;5;" in r.stdout and "colour = " in r.stderr
    plain = re.sub(r"\x1b\[[0-9;]*m", "", r.stdout)
    assert plain == charrnn.load(model).generate("ab", 80, seed=2) + "\n"


@pytest.mark.parametrize("args,message", [
    (["--beam", "0"], "Invalid value for '--beam': 0 is not in the range x>=1"),
    (["--no-repeat", "1"], "Invalid value for '--no-repeat': 1 is not in the range x>=2"),
    (["--temp", "0.5,x"], "'x' is not a number"),
    (["--temp", "0.5,,1"], "'' is not a number"),
    (["--temp", "0.5,-1"], "each temperature must be a finite number >= 0"),
    (["--temp", "inf"], "each temperature must be a finite number >= 0"),
    (["--beam", "2", "--num-samples", "3"], "3 is more than the 2 beams kept"),
    (["--beam", "2", "--top-k", "3"], "--beam is deterministic"),
    (["--temp", "0.2,1", "--num-samples", "3"], "one sample per temperature"),
    (["--prime-file", "{tmp}/missing.txt"], "missing.txt: No such file or directory"),
    (["--prime-file", "{tmp}/empty.txt"], "empty.txt is empty"),
    (["--prime-file", "{tmp}/latin1.txt"], "latin1.txt is not UTF-8 text"),
    (["--prime-file", "{tmp}"], "is a directory"),
    (["--prime", "x", "--prime-file", "{tmp}/ok.txt"], "not both"),
])
def test_bad_values_are_usage_errors(model, tmp_path, args, message):
    (tmp_path / "empty.txt").write_text("")
    (tmp_path / "ok.txt").write_text("the")
    (tmp_path / "latin1.txt").write_bytes("café".encode("latin-1"))
    r = run(model, *[a.format(tmp=tmp_path) for a in args])
    assert r.exit_code == 2, r.output
    error = [line for line in r.output.splitlines() if line.startswith("Error:")]
    assert len(error) == 1 and message in error[0], r.output


def test_unknown_prime_characters_are_one_line_errors(model, tmp_path):
    f = tmp_path / "p.txt"
    f.write_text("QQ")
    r = run(model, "--prime-file", f)
    assert r.exit_code == 1 and r.output.count("\n") == 1 and "'Q'" in r.output
