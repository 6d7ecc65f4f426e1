"""The joint graphone model as users meet it: `charrnn train --task seq2seq` builds it and
tunes its weight on the held-out sources, `charrnn transduce --beam K` and `charrnn eval
--beam K` re-rank with it (--no-joint: without), the Python API, and its file's errors."""
import numpy as np
import pytest
from click.testing import CliRunner

import charrnn
from charrnn.cli import main
from charrnn.errors import CheckpointError
from charrnn.io.joint_file import load_joint
from charrnn.training.seq2seq_joint import WEIGHTS, build_joint

from test_classify_cli import invoke, one_line
from test_seq2seq_cli import TINY


def spell(word):
    """A toy pronunciation: sh and ch one sound each, a final e silent, else each letter."""
    out, i = [], 0
    while i < len(word):
        if word[i:i + 2] in ("sh", "ch"):
            out.append(word[i:i + 2].upper())
            i += 2
        elif word[i] == "e" and i == len(word) - 1 and i > 0:
            i += 1
        else:
            out.append(word[i].upper())
            i += 1
    return " ".join(out)


def words(n, seed):
    rng = np.random.default_rng(seed)
    return ["".join(rng.choice(list("abcehos"), rng.integers(2, 7))) for _ in range(n)]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    d = tmp_path_factory.mktemp("joint")
    tsv = d / "toy.tsv"
    tsv.write_text("".join(f"{w}\t{spell(w)}\n" for w in words(600, 0) if spell(w)))
    r = CliRunner().invoke(main, ["train", str(tsv), "--out", str(d / "run"), "--max-steps",
                                  "200", "--val-frac", "0.1", *TINY], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    return d / "run", r.output


def test_train_builds_and_tunes_the_joint_model(run):
    path, output = run
    assert (path / "joint.safetensors").is_file()
    line = [l for l in output.splitlines() if "joint graphone model" in l]
    assert len(line) == 1 and "in joint.safetensors" in line[0] and "--beam 8" in line[0]
    j = load_joint(path / "joint.safetensors")
    assert j.weight in WEIGHTS and j.info["tuned_on"] > 0 and j.info["beam"] == 8
    assert j.info["held_out_wer_with"] <= j.info["held_out_wer_without"]   # 0 is tried
    t = charrnn.load_transducer(path)
    assert t.joint is not None and t.joint.weight == j.weight
    assert charrnn.load_transducer(path, joint=False).joint is None


def test_beam_search_is_reranked_unless_no_joint(run):
    path, _ = run
    texts = words(40, 9)
    t = charrnn.load_transducer(path)
    t.joint.weight = 3.0    # a weight that changes some outputs, to tell the paths apart
    lists = t.nbest(texts, 4, 4)
    reranked = t.transduce(texts, beam=4)
    assert reranked == t.joint.pick(texts, lists, t.split)
    joint, t.joint = t.joint, None
    plain = t.transduce(texts, beam=4)
    assert plain == [lst[0][0] for lst in lists] and plain != reranked
    t.joint = joint
    assert t.transduce(texts) == charrnn.load_transducer(path, joint=False).transduce(texts)

    tuned = charrnn.load_transducer(path)
    r = CliRunner().invoke(main, ["transduce", str(path), *texts[:5], "--beam", "4"])
    assert [l.split("\t")[1] for l in r.output.splitlines()] == tuned.transduce(texts[:5], 4)
    r = CliRunner().invoke(main, ["transduce", str(path), *texts[:5], "--beam", "4",
                                  "--no-joint"])
    assert [l.split("\t")[1] for l in r.output.splitlines()] == plain[:5]


def test_eval_says_when_it_reranks(run, tmp_path):
    path, _ = run
    test = tmp_path / "test.tsv"
    test.write_text("".join(f"{w}\t{spell(w)}\n" for w in words(50, 3)))
    r = CliRunner().invoke(main, ["eval", str(path), str(test), "--beam", "4"])
    assert r.exit_code == 0 and "beam 4 re-ranked by the joint model (weight " in r.output
    for extra in (["--beam", "4", "--no-joint"], []):
        r = CliRunner().invoke(main, ["eval", str(path), str(test), *extra])
        assert r.exit_code == 0 and "joint" not in r.output


def test_save_writes_it_beside_and_a_bad_one_is_one_line(run, tmp_path):
    path, _ = run
    t = charrnn.load_transducer(path)
    t.save(tmp_path / "g2p.safetensors")
    assert (tmp_path / "g2p.joint.safetensors").is_file()
    u = charrnn.load_transducer(tmp_path / "g2p.safetensors")
    texts = words(20, 4)
    assert u.joint.weight == t.joint.weight and u.transduce(texts, 3) == t.transduce(texts, 3)
    (tmp_path / "g2p.joint.safetensors").write_bytes(b"not a model")
    with pytest.raises(CheckpointError, match="cannot load .*g2p.joint.safetensors"):
        charrnn.load_transducer(tmp_path / "g2p.safetensors")
    one_line(invoke(CliRunner(), "transduce", tmp_path / "g2p.safetensors", "abc", "--beam", "2"))
    r = invoke(CliRunner(), "transduce", tmp_path / "g2p.safetensors", "abc", "--no-joint")
    assert r.exit_code == 0


def test_build_joint_without_held_out_pairs_takes_the_default(run):
    path, _ = run
    t = charrnn.load_transducer(path, joint=False)
    pairs = [(w, spell(w)) for w in words(100, 5) if spell(w)]
    j = build_joint(t, pairs, [], order=3, threads=1)
    assert j.weight == 0.5 and "tuned_on" not in j.info and j.info["train_pairs"] == len(pairs)


def test_an_ensemble_is_reranked_by_its_first_members_joint_model(run, tmp_path):
    path, _ = run
    texts = words(30, 11)
    t = charrnn.load_transducer(path)
    t.joint.weight = 3.0
    other = charrnn.load_transducer(path, joint=False)   # a second member (no joint)
    ens = charrnn.Ensemble([t, other])
    assert ens.joint is t.joint
    every = ens.nbest(texts, 8, 4)
    assert ens.transduce(texts, 4) == t.joint.pick(texts, every, t.split)
    assert charrnn.Ensemble([other, t]).transduce(texts, 4) == [l[0][0] for l in every]
    r = CliRunner().invoke(main, ["transduce", str(path), *texts[:4], "--beam", "4",
                                  "--ensemble", str(path)])
    tuned = charrnn.Ensemble([charrnn.load_transducer(path), other])
    assert [l.split("\t")[1] for l in r.output.splitlines()] == tuned.transduce(texts[:4], 4)


def test_resuming_a_finished_run_without_one_builds_it(run, tmp_path):
    import shutil
    path, _ = run
    copy = tmp_path / "old"
    shutil.copytree(path, copy)
    (copy / "joint.safetensors").unlink()          # as a run from before joint models
    r = CliRunner().invoke(main, ["train", "--out", str(copy), "--resume"])
    assert r.exit_code == 0, r.output
    assert "already finished" in r.output and "joint graphone model" in r.output
    j, k = load_joint(copy / "joint.safetensors"), load_joint(path / "joint.safetensors")
    assert j.weight == k.weight and np.array_equal(j.cells, k.cells)
    r = CliRunner().invoke(main, ["train", "--out", str(copy), "--resume"])
    assert "joint graphone model" not in r.output   # there now: not built again


def test_the_time_budget_keeps_room_for_the_joint_model(tmp_path, monkeypatch):
    from charrnn.training import seq2seq_run
    assert seq2seq_run.joint_reserve(116_646, 30) == pytest.approx(10.5, abs=0.01)
    assert seq2seq_run.joint_reserve(116_646, 0.5) == 3.0      # a tenth of the budget at most
    assert seq2seq_run.joint_reserve(116_646, 0) == 0.0       # no budget, no reserve
    monkeypatch.setattr(seq2seq_run, "JOINT_SECONDS", 100.0)  # as if it took for ever
    tsv = tmp_path / "toy.tsv"
    tsv.write_text("".join(f"{w}\t{spell(w)}\n" for w in words(200, 6) if spell(w)))
    r = CliRunner().invoke(main, ["train", str(tsv), "--out", str(tmp_path / "run"),
                                  "--max-minutes", "0.05", *TINY[:-4], "--threads", "1"])
    assert r.exit_code == 0, r.output
    assert charrnn.load_transducer(tmp_path / "run").info["step"] > 0   # it still trained
