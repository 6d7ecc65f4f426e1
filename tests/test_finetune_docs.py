"""--init with --docs: fine-tuning a stream base on a list of items (the end marker is a
new character; the base's characters stay, line break included, though no item holds
one), fine-tuning a documents base on another list (its marker already known), and the
exact resume of such a run."""
import os
import signal

import numpy as np
import pytest

import charrnn
from charrnn.data.documents import END
from charrnn.io import checkpoint as ckpt
from charrnn.training.loop import Interrupted, train

SHAPE = dict(hidden=24, layers=1, embed=8)
RUN = dict(seq_len=16, batch_size=4, eval_every=10, max_minutes=0, val_frac=0.1, threads=1,
           quiet=True)
NAMES = ["anna", "bert", "carl", "dora", "emil", "fritz", "greta", "hans", "ida", "jan"]


def names(n, seed, extra=""):
    rng = np.random.default_rng(seed)
    return "".join(f"{rng.choice(NAMES)}{extra}{rng.integers(10)}\n" for _ in range(n))


@pytest.fixture(scope="module")
def stream_base(tmp_path_factory):
    d = tmp_path_factory.mktemp("stream")
    (d / "base.txt").write_text(names(400, 0))
    train(str(d / "base.txt"), out=str(d / "run"), max_steps=40, **SHAPE, **RUN)
    return d / "run"


def test_a_stream_base_fine_tunes_on_items_keeping_its_vocabulary(stream_base, tmp_path):
    items = tmp_path / "items.txt"
    items.write_text(names(300, 1, extra="Q"))          # 'Q' is new, and so is the marker
    train(str(items), out=str(tmp_path / "run"), init=str(stream_base), docs="lines",
          max_steps=30, **RUN)
    base = charrnn.load(stream_base, best=True)
    model = charrnn.load(tmp_path / "run")
    assert model.config["end_marker"] == END
    assert set(base.vocab) <= set(model.vocab)         # "\n" kept though no item holds it
    assert {"Q", END} <= set(model.vocab) - set(base.vocab)
    got = model.items(5, seed=3, length=40)
    assert len(got) == 5 and all(END not in t for t in got)


def test_a_documents_base_fine_tunes_on_another_list(tmp_path):
    base_txt, new_txt = tmp_path / "a.txt", tmp_path / "b.txt"
    base_txt.write_text(names(300, 2))
    new_txt.write_text(names(300, 3, extra="x"))
    train(str(base_txt), out=str(tmp_path / "base"), docs="lines", max_steps=20, **SHAPE,
          **RUN)
    train(str(new_txt), out=str(tmp_path / "ft"), init=str(tmp_path / "base"), docs="lines",
          max_steps=20, **RUN)
    base, ft = charrnn.load(tmp_path / "base"), charrnn.load(tmp_path / "ft")
    # the base's characters, the marker once, and the new items' (no line break)
    assert ft.vocab == sorted(set(base.vocab) | set(new_txt.read_text()) - {"\n"})
    # a stream run from a documents base: the marker stays a (never seen) character
    train(str(new_txt), out=str(tmp_path / "plain"), init=str(tmp_path / "base"),
          max_steps=5, **RUN)
    plain = charrnn.load(tmp_path / "plain")
    assert END in plain.vocab and plain.config["end_marker"] == ""


def test_resume_of_a_fine_tuned_documents_run_is_exact(stream_base, tmp_path):
    items = tmp_path / "items.txt"
    items.write_text(names(300, 4, extra="Q"))
    opts = dict(RUN, init=str(stream_base), docs="lines", max_steps=21, dropout=0.1)

    def interrupt_at(step):
        def progress(record):
            if record["step"] == step:
                os.kill(os.getpid(), signal.SIGINT)
        return progress
    train(str(items), out=str(tmp_path / "a"), **opts)
    with pytest.raises(Interrupted):
        train(str(items), out=str(tmp_path / "b"), progress=interrupt_at(12), **opts)
    train(str(items), out=str(tmp_path / "b"), resume=True, quiet=True, threads=1)
    pa = ckpt.load_model(tmp_path / "a" / "model.safetensors")
    pb = ckpt.load_model(tmp_path / "b" / "model.safetensors")
    assert pa.vocab == pb.vocab
    for k in pa.params:
        np.testing.assert_array_equal(pa.params[k], pb.params[k])
