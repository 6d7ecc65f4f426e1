"""charrnn export --format c of a transducer (--task seq2seq): the file compiles as strict
C99 (with GCC and Clang, and for a Cortex-M4), and the program it makes writes what
`charrnn transduce` writes without --beam, with the same log-probabilities."""
import re
import subprocess

import numpy as np
import pytest
from click.testing import CliRunner

import charrnn
from charrnn.cli import main
from charrnn.errors import ConfigError
from charrnn.export.c_seq2seq import c_seq2seq_source
from charrnn.nn.seq2seq_decode import greedy
from charrnn.training.seq2seq import load_transducer, train_seq2seq
from test_export_c import STRICT, arm_size, build, tool

_CACHE = {}


def pairs(n=300, seed=0):
    """Words of a-h and their "pronunciation": the letters reversed, upper case, vowels
    with a stress digit: something to learn that needs the attention."""
    rng = np.random.default_rng(seed)
    words = ["".join(rng.choice(list("abcdefgh"), rng.integers(1, 7))) for _ in range(n)]
    return [(w, " ".join(ch.upper() + ("1" if ch in "aeiou" else "") for ch in w[::-1]))
            for w in words]


def transducer(cell="gru", attention="luong", tokens="words", layers_hidden=12):
    key = (cell, attention, tokens, layers_hidden)
    if key not in _CACHE:
        ps = pairs() if tokens == "words" else [(w, w[::-1]) for w, _ in pairs()]
        _CACHE[key] = train_seq2seq(ps, tokens=tokens, cell=cell, attention=attention, embed=8,
                                    hidden=layers_hidden, decoder=20, attn=10, steps=150,
                                    batch_size=16, lr=0.02, seed=1)
    return _CACHE[key]


def program(tr, tmp_path, name="t", int8=False, cc="cc", flags=()):
    src = charrnn.export_c(tr, tmp_path / f"{name}.c", int8=int8)
    return build(src, tmp_path / name, "-DCHARRNN_MAIN", *flags, cc=cc)


def outputs(exe, texts, *args):
    """[(output, log-probability)] of the program for texts on standard input."""
    r = subprocess.run([str(exe), "--scores", *args], input="\n".join(texts) + "\n",
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    lines = [line.split("\t") for line in r.stdout.splitlines()]
    assert [t for t, _, _ in lines] == list(texts)
    return [(o, float(s)) for _, o, s in lines]


# texts: seen words, unseen ones, a character the model never saw (id 0), several bytes
TEXTS = [w for w, _ in pairs(40, seed=7)] + ["hgfedcba", "zz", "aé€b", "a"]


@pytest.mark.parametrize("cell", ["gru", "lstm"])
@pytest.mark.parametrize("attention", ["luong", "bahdanau"])
def test_outputs_and_scores_equal_charrnn_greedy(cell, attention, tmp_path):
    tr = transducer(cell, attention)
    got = outputs(program(tr, tmp_path), TEXTS)
    src, src_len = tr.encode_sources(TEXTS)
    _, scores = greedy(tr.model, src, src_len, tr.max_len)
    assert [o for o, _ in got] == tr.transduce(TEXTS)
    np.testing.assert_allclose([s for _, s in got], scores, atol=2e-5)
    assert len({o for o, _ in got}) > 10                 # a model that says something


def test_character_targets_with_clang(tmp_path):
    """Characters joined by nothing, compiled by Clang's strict C99."""
    tr = transducer(tokens="chars")
    got = outputs(program(tr, tmp_path, cc="clang"), TEXTS)
    assert [o for o, _ in got] == tr.transduce(TEXTS)
    assert sum(" " not in o and len(o) > 2 for o, _ in got) > 10


def test_a_two_layer_encoder(tmp_path):
    """Layer 1 reads layer 0's outputs from the other buffer (random weights: the
    trained models above have one layer)."""
    from charrnn.nn.seq2seq import Seq2Seq
    from charrnn.training.seq2seq import Transducer
    base = transducer("gru", "luong")
    cfg = dict(base.model.config, layers=2)
    m = Seq2Seq(cfg, seed=5)
    for name, p in m.params.items():   # random weights, large enough to matter
        p[...] = np.random.default_rng(len(name)).standard_normal(p.shape) * 0.5
    tr = Transducer(m, base.src_vocab, base.tgt_vocab, base.tokens, base.max_len)
    got = outputs(program(tr, tmp_path), TEXTS)
    src, src_len = tr.encode_sources(TEXTS)
    _, scores = greedy(tr.model, src, src_len, tr.max_len)
    assert [o for o, _ in got] == tr.transduce(TEXTS)
    np.testing.assert_allclose([s for _, s in got], scores, atol=1e-4)


def test_int8_is_smaller_and_mostly_the_same(tmp_path):
    tr = transducer("gru", "bahdanau")
    f32 = charrnn.export_c(tr, tmp_path / "a.c")
    i8 = charrnn.export_c(tr, tmp_path / "b.c", int8=True)
    flash = [int(re.search(r"Weights: (\d+) bytes", p.read_text())[1]) for p in (f32, i8)]
    assert flash[1] < 0.4 * flash[0]                     # biases and scales stay float
    got = outputs(build(i8, tmp_path / "b", "-DCHARRNN_MAIN"), TEXTS)
    same = np.mean([o == w for (o, _), w in zip(got, tr.transduce(TEXTS))])
    assert same >= 0.8, same


LIBRARY = r"""
#define G2P_MAX_SOURCE 6
#include "model.c"
#include <stdio.h>
int main(void)
{
    static g2p_s2s ws;
    int src[8] = {1, 2, 3, 4, 5, 6, 7, 0}, out[4], i, n;
    double lp;
    printf("%d %d\n", g2p_transduce(&ws, src, 0, out, 4, NULL),
           g2p_transduce(&ws, src, 7, out, 4, NULL));          /* -1 -1: no room */
    n = g2p_transduce(&ws, src, 6, out, 2, &lp);               /* cut at 2 tokens */
    printf("%d", n);
    for (i = 0; i < n; i++) printf(" %s", g2p_target_tokens[out[i]]);
    printf(" %.6f %d %d\n", lp, g2p_source_id('a'), g2p_source_id('z'));
    return 0;
}
"""


def test_library_api_limits_and_prefix(tmp_path):
    """The declared API under another prefix: a source of 0 or more than
    G2P_MAX_SOURCE characters is refused (-1), max_out cuts the output (and its
    log-probability then has no EOS, as charrnn's greedy with max_len), source ids."""
    tr = transducer("gru", "luong")
    (tmp_path / "model.c").write_text(c_seq2seq_source(tr, prefix="g2p"))
    (tmp_path / "main.c").write_text(LIBRARY)
    exe = build(tmp_path / "main.c", tmp_path / "lib", "-I", str(tmp_path))
    lines = subprocess.run([str(exe)], capture_output=True, text=True, check=True).stdout.split("\n")
    assert lines[0] == "-1 -1"
    text = "".join(tr.src_vocab[i - 1] for i in (1, 2, 3, 4, 5, 6))
    (want,), (score,) = greedy(tr.model, *tr.encode_sources([text]), 2)
    parts = lines[1].split()
    assert int(parts[0]) == len(want) == 2
    assert parts[1:3] == [tr.tgt_vocab[i - 2] for i in want]
    assert abs(float(parts[3]) - score) < 2e-5
    assert parts[4:] == [str(tr.src_vocab.index("a") + 1), "0"]
    with pytest.raises(ConfigError, match="C identifier"):
        c_seq2seq_source(tr, prefix="9x")


def test_program_errors_are_one_line_and_it_goes_on(tmp_path):
    exe = program(transducer(), tmp_path)
    long = "a" * 65
    r = subprocess.run([str(exe)], input=f"ab\n{long}\n\nba\n", capture_output=True, text=True)
    assert r.returncode == 1
    assert [line.split("\t")[0] for line in r.stdout.splitlines()] == ["ab", "ba"]
    assert r.stderr.count("\n") == 1 and "longer than 64 characters" in r.stderr
    r = subprocess.run([str(exe), "--bogus"], capture_output=True, text=True)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "unknown option" in r.stderr
    r = subprocess.run([str(exe), "ab", "ba"], capture_output=True, text=True)
    assert r.returncode == 0 and len(r.stdout.splitlines()) == 2


def export_saved(tmp_path, fmt, out):
    """`charrnn export` of the default test transducer, saved as t.safetensors: (it, result)."""
    tr = transducer()
    tr.save(tmp_path / "t.safetensors")
    return tr, CliRunner().invoke(main, ["export", str(tmp_path / "t.safetensors"), "--format",
                                         fmt, "-o", str(out)])


def test_cli_exports_a_transducer_run_and_refuses_other_formats(tmp_path):
    _, r = export_saved(tmp_path, "c", tmp_path / "t.c")
    assert r.exit_code == 0, r.output
    exe = build(tmp_path / "t.c", tmp_path / "t", "-DCHARRNN_MAIN")
    got = outputs(exe, TEXTS)
    assert [o for o, _ in got] == load_transducer(tmp_path / "t.safetensors").transduce(TEXTS)
    with pytest.raises(charrnn.errors.ExportError, match="is a transducer: pass charrnn.load_transducer"):
        charrnn.export_c(tmp_path / "t.safetensors", tmp_path / "u.c")
    for fmt in ("html", "web"):
        r = CliRunner().invoke(main, ["export", str(tmp_path / "t.safetensors"), "--format",
                                      fmt, "-o", str(tmp_path / "x")])
        assert r.exit_code == 2 and "exports to C or ONNX" in r.output
        assert "Traceback" not in r.output


def test_cortex_m4_build_of_an_int8_transducer(tmp_path):
    """A 1x64 GRU encoder and 128-unit decoder (a small G2P model), int8, sources of up to
    24 characters: the weights fit a 256 KB flash, the workspace 64 KB of RAM."""
    from charrnn.nn.seq2seq import Seq2Seq
    from charrnn.training.seq2seq import Transducer
    cfg = dict(cell="gru", attention="luong", embed=32, hidden=64, decoder=128, attn=64,
               layers=1, dropout=0.0, src_vocab=27, tgt_vocab=71)
    tr = Transducer(Seq2Seq(cfg, seed=0), [chr(97 + i) for i in range(26)],
                    [f"P{i}" for i in range(69)], "words", 40)
    (tmp_path / "model.c").write_text(c_seq2seq_source(tr, int8=True))
    arm = ["-mcpu=cortex-m4", "-mthumb", "-Os", "-DCHARRNN_MAX_SOURCE=24"]
    obj = tmp_path / "model.o"
    r = subprocess.run([tool("arm-none-eabi-gcc"), *STRICT, *arm, "-c", str(tmp_path / "model.c"),
                        "-o", str(obj)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-3000:]
    text, data, bss = arm_size(obj)
    assert data == 0 and bss == 0                         # the workspace is the caller's
    assert text <= 256 * 1024, text
    (tmp_path / "size.c").write_text('#define CHARRNN_DECLARATIONS_ONLY\n#include "model.c"\n'
                                     "int size = sizeof(charrnn_s2s);\n")
    r = subprocess.run([tool("arm-none-eabi-gcc"), *STRICT, *arm, "-S", "-o", "-",
                        str(tmp_path / "size.c")], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-3000:]
    size = int(re.search(r"\.word\s+(\d+)", r.stdout)[1])
    assert size <= 56 * 1024, size                        # leaves 8 KB for the stack
