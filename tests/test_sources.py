"""Where a run's text comes from (charrnn.data.sources): a pipe (`charrnn train -`,
/dev/stdin, a FIFO), and on resume the encoded corpus the run holds when its text file
was moved or deleted. Real pipes and real child processes."""
import json
import os
import subprocess
import sys
import threading

import pytest

from conftest import child_env

TINY = ["--hidden", "16", "--layers", "1", "--embed", "8", "--seq-len", "8",
        "--batch-size", "4", "--eval-every", "2", "--max-minutes", "0", "-q"]


def charrnn(*args, stdin=None, input=None, cwd=None):
    env = child_env()
    return subprocess.run([sys.executable, "-m", "charrnn.cli", *map(str, args)], env=env,
                          stdin=stdin, input=input, capture_output=True, timeout=120, cwd=cwd)


def steps_of(run_dir):
    return [json.loads(l) for l in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_train_dash_reads_a_pipe_and_resumes_from_its_encoded_corpus(tmp_path, corpus):
    run_dir = tmp_path / "r"
    r = charrnn("train", "-", "--out", run_dir, "--max-steps", "4", *TINY,
                input=corpus.read_bytes())
    assert r.returncode == 0, r.stderr
    meta = json.loads((run_dir / "corpus.json").read_text())
    assert meta["source"] == "<stdin>" and meta["streamed"]
    assert not (run_dir / "corpus.stdin.tmp").exists()
    r = charrnn("train", "--out", run_dir, "--resume", "--max-steps", "6", "-q",
                stdin=subprocess.DEVNULL)
    assert r.returncode == 0, r.stderr
    assert steps_of(run_dir)[-1]["step"] == 6


def test_the_same_run_from_a_file_and_from_a_pipe(tmp_path, corpus):
    """The text is the same, so are the losses."""
    a, b = tmp_path / "a", tmp_path / "b"
    assert charrnn("train", corpus, "--out", a, "--max-steps", "4", *TINY).returncode == 0
    r = charrnn("train", "/dev/stdin", "--out", b, "--max-steps", "4", *TINY,
                input=corpus.read_bytes())   # a real pipe
    assert r.returncode == 0, r.stderr
    losses = lambda d: [s.get("train_loss") for s in steps_of(d)]
    assert losses(a) == losses(b)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_train_reads_a_fifo(tmp_path, corpus):
    fifo = tmp_path / "text.fifo"
    os.mkfifo(fifo)
    writer = threading.Thread(target=lambda: fifo.write_bytes(corpus.read_bytes()))
    writer.start()
    r = charrnn("train", fifo, "--out", tmp_path / "r", "--max-steps", "3", *TINY)
    writer.join(10)
    assert r.returncode == 0, r.stderr


def test_empty_pipe_is_a_one_line_error(tmp_path):
    r = charrnn("train", "-", "--out", tmp_path / "r", "--max-steps", "3", *TINY, input=b"")
    assert r.returncode == 1
    assert r.stderr.decode().count("\n") == 1 and b"Traceback" not in r.stderr
    assert not (tmp_path / "r").exists()


def test_resume_after_the_corpus_file_was_deleted(tmp_path, corpus):
    run_dir = tmp_path / "r"
    assert charrnn("train", corpus, "--out", run_dir, "--max-steps", "4", *TINY).returncode == 0
    corpus.unlink()
    r = charrnn("train", "--out", run_dir, "--resume", "--max-steps", "6", "-q")
    assert r.returncode == 0, r.stderr
    assert steps_of(run_dir)[-1]["step"] == 6


def test_resume_with_the_moved_file_is_accepted_when_its_text_matches(tmp_path, corpus):
    run_dir = tmp_path / "r"
    assert charrnn("train", corpus, "--out", run_dir, "--max-steps", "4", *TINY).returncode == 0
    moved = tmp_path / "elsewhere.txt"
    corpus.rename(moved)
    r = charrnn("train", moved, "--out", run_dir, "--resume", "--max-steps", "6", "-q")
    assert r.returncode == 0, r.stderr
    other = tmp_path / "other.txt"
    other.write_text(moved.read_text() + "more")
    r = charrnn("train", other, "--out", run_dir, "--resume", "--max-steps", "8", "-q")
    assert r.returncode == 1 and b"was trained on" in r.stderr
