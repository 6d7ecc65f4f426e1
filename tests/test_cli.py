"""The `charrnn` command, driven through Click's CliRunner in a scratch directory."""
import json

import pytest
from click.testing import CliRunner

from charrnn.cli import main

TINY = ["--hidden", "16", "--layers", "1", "--embed", "8", "--seq-len", "8",
        "--batch-size", "4", "--eval-every", "2", "--max-minutes", "0", "--val-frac", "0.1"]


@pytest.fixture
def runner(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CHARRNN_RUNS", raising=False)
    return CliRunner()


@pytest.fixture
def corpus(tmp_path):
    p = tmp_path / "poem.txt"
    p.write_text("Shall I compare thee to a summer's day?\nThou art more lovely.\n" * 30)
    return p


def invoke(runner, *args):
    return runner.invoke(main, [str(a) for a in args], catch_exceptions=False)


def one_line(r, code=1):
    """The contract for charrnn's own errors: exit 1 and one line 'Error: ...'."""
    assert r.exit_code == code, (r.exit_code, r.output)
    assert r.output.startswith("Error: ") and r.output.count("\n") == 1, r.output
    return r.output


def usage_error(r, option):
    """Click's contract for a bad option value: exit 2, the option named."""
    assert r.exit_code == 2, (r.exit_code, r.output)
    assert "Usage:" in r.output and "Error: Invalid value" in r.output and option in r.output


def test_every_command_has_help_with_an_example(runner):
    r = invoke(runner, "--help")
    assert r.exit_code == 0
    for cmd in ["train", "sample", "eval"]:
        assert cmd in r.output
        h = invoke(runner, cmd, "--help")
        assert h.exit_code == 0 and "Example" in h.output, cmd


def test_train_three_steps_writes_a_run(runner, corpus, tmp_path):
    r = invoke(runner, "train", corpus, "--max-steps", "3", *TINY)
    assert r.exit_code == 0, r.output
    runs = list((tmp_path / "charrnn-runs").iterdir())
    assert len(runs) == 1 and runs[0].name.startswith("poem-")
    names = {p.name for p in runs[0].iterdir()}
    assert {"model.safetensors", "best.safetensors", "state.safetensors", "metrics.jsonl"} <= names
    steps = [json.loads(l)["step"] for l in (runs[0] / "metrics.jsonl").read_text().splitlines()]
    assert steps[:3] == [1, 2, 3]
    assert "val loss" in r.output                # the log goes to stderr, mixed in here


def test_train_quiet_prints_only_the_summary(runner, corpus, tmp_path):
    r = invoke(runner, "train", corpus, "--max-steps", "3", "--out", "r", "--quiet", *TINY)
    assert r.exit_code == 0
    assert r.output.startswith("r\tval_loss=") and r.output.count("\n") == 1


def test_train_refuses_existing_run_then_resumes(runner, corpus):
    assert invoke(runner, "train", corpus, "--max-steps", "2", "--out", "r", "-q", *TINY).exit_code == 0
    r = invoke(runner, "train", corpus, "--max-steps", "2", "--out", "r", "-q", *TINY)
    assert "already holds a run" in one_line(r) and "--resume" in r.output
    r = invoke(runner, "train", "--max-steps", "4", "--out", "r", "--resume", "-q")
    assert r.exit_code == 0, r.output


@pytest.mark.parametrize("content,needle", [
    (b"", "empty"),
    (b"   \n\t \n", "whitespace"),
    (b"caf\xc3\xa9 \xff\xfe ok" * 20, "byte offset"),
    (b"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "nothing to learn"),
])
def test_train_bad_corpus_is_a_one_line_error(runner, tmp_path, content, needle):
    p = tmp_path / "bad.txt"
    p.write_bytes(content)
    r = invoke(runner, "train", p, "--max-steps", "2", *TINY)
    assert r.exit_code == 1
    assert r.output.startswith("Error: ") and r.output.count("\n") == 1, r.output
    assert needle in r.output


def test_train_invalid_utf8_suggests_encoding_and_latin1_works(runner, tmp_path):
    p = tmp_path / "latin.txt"
    p.write_bytes("Señor, où êtes-vous? ".encode("latin-1") * 40)
    r = invoke(runner, "train", p, "--max-steps", "2", *TINY)
    assert "--encoding" in one_line(r) and "byte offset 2" in r.output
    r = invoke(runner, "train", p, "--max-steps", "2", "--encoding", "latin-1", "-q", *TINY)
    assert r.exit_code == 0, r.output


def test_train_missing_file_and_directory(runner, tmp_path):
    r = invoke(runner, "train", tmp_path / "nope.txt", *TINY)
    assert "nope.txt" in one_line(r)
    empty = tmp_path / "empty"
    empty.mkdir()
    r = invoke(runner, "train", empty, *TINY)     # a folder is its files: here none
    assert "the folder" in one_line(r) and "holds no files" in r.output
    assert not (tmp_path / "charrnn-runs").exists()


def test_train_corpus_too_short_says_what_to_change(runner, tmp_path):
    p = tmp_path / "short.txt"
    p.write_text("hello there")
    r = invoke(runner, "train", p, "--max-steps", "2", *TINY)
    assert "--batch-size" in one_line(r) and "--seq-len" in r.output


@pytest.mark.parametrize("option,value", [
    ("--val-frac", "0"), ("--val-frac", "1.5"), ("--hidden", "0"), ("--layers", "-1"),
    ("--batch-size", "0"), ("--seq-len", "0"), ("--lr", "0"), ("--dropout", "1"),
    ("--cell", "transformer"), ("--optimizer", "sgd"), ("--threads", "0"),
])
def test_train_bad_option_is_a_usage_error(runner, corpus, option, value):
    usage_error(invoke(runner, "train", corpus, option, value), option)


def test_eval_command(runner, corpus):
    invoke(runner, "train", corpus, "--max-steps", "3", "--out", "r", "-q", *TINY)
    r = invoke(runner, "eval", "r", corpus)
    assert r.exit_code == 0
    assert "nats/char" in r.output and "bits/char" in r.output
    other = corpus.parent / "other.txt"
    other.write_text("Zebra!" * 10)
    r = invoke(runner, "eval", "r", other)
    assert "never saw" in one_line(r) and "'Z'" in r.output


@pytest.mark.parametrize("args,needle", [
    (["sample", "nowhere"], "no such checkpoint"),
    (["sample"], "charrnn train"),
    (["eval", "nowhere", "x.txt"], "no such checkpoint"),
])
def test_missing_checkpoint_is_a_one_line_error(runner, args, needle):
    r = invoke(runner, *args)
    assert r.exit_code == 1 and needle in r.output and r.output.count("\n") == 1


def test_eval_scores_any_text_the_model_can_read(runner, corpus):
    """Issue 27, item 12: one repeated character is scored; unknown characters are an
    error or skipped (and counted); messages speak of evaluation."""
    invoke(runner, "train", corpus, "--max-steps", "3", "--out", "r", "-q", *TINY)
    same = corpus.parent / "same.txt"
    same.write_text("a" * 100)
    r = invoke(runner, "eval", "r", same)
    assert r.exit_code == 0, r.output
    assert "over 99 characters" in r.output
    mixed = corpus.parent / "mixed.txt"
    mixed.write_text("Shall I compare thee? Zebra! " * 10)
    assert "--unknown skip" in one_line(invoke(runner, "eval", "r", mixed))
    r = invoke(runner, "eval", "r", mixed, "--unknown", "skip")
    assert r.exit_code == 0, r.output
    assert "(30 characters the model never saw skipped)" in r.output   # Z, b, !
    empty = corpus.parent / "empty.txt"
    empty.write_text("")
    r = invoke(runner, "eval", "r", empty)
    assert "nothing to evaluate" in one_line(r) and "train" not in r.output
    bad = corpus.parent / "bad.txt"
    bad.write_bytes(b"Shall \xff I")
    assert "train" not in one_line(invoke(runner, "eval", "r", bad))


def test_sample_reads_backslash_escapes_in_stop_and_prime(runner, corpus):
    """Item 15: --stop "\\n\\n" as `charrnn sample --help` shows it."""
    import charrnn
    invoke(runner, "train", corpus, "--max-steps", "3", "--out", "r", "-q", *TINY)
    model = charrnn.load("r", best=True)
    want = model.generate(prime="Thou\n", length=300, seed=5, stop=["\n"])
    r = invoke(runner, "sample", "r", "--prime", r"Thou\n", "--length", "300", "--seed", "5",
               "--stop", r"\n")
    assert r.exit_code == 0, r.output
    assert r.output == want + "\n"
    assert r.output.count("\n") <= 3   # the prime's newline, the stop's, the last line's
    usage_error(invoke(runner, "sample", "r", "--stop", "abc\\"), "--stop")


def test_num_samples_are_streamed_and_separated_by_headers(runner, corpus):
    """Item 14: K samples, each under '--- sample J of K ---', the texts generate() makes;
    the pieces come in lockstep (the first sample streams, the others wait on disk)."""
    import charrnn
    invoke(runner, "train", corpus, "--max-steps", "3", "--out", "r", "-q", *TINY)
    model = charrnn.load("r", best=True)
    texts = model.generate(prime="Sh", length=5000, seed=2, num_samples=3)
    r = invoke(runner, "sample", "r", "--prime", "Sh", "--length", "5000", "--seed", "2",
               "--num-samples", "3")
    assert r.exit_code == 0, r.output
    assert r.output == "".join(f"--- sample {j + 1} of 3 ---\n{t}\n" for j, t in
                               enumerate(texts))[:-1] + "\n"
    order = [j for j, _ in model.stream_batch(prime="Sh", length=5000, seed=2, num_samples=3)]
    assert order[:3] == [0, 1, 2] and order[3:6] == [0, 1, 2] and len(order) > 6
