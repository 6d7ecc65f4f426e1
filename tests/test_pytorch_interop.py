"""Checkpoints load into PyTorch with strict=True and compute the same thing.

PyTorch is a test-only peer: these tests skip when it is not installed
(`pip install torch==2.13.0` for the CPU build), and fail instead under
CHARRNN_REQUIRE_TOOLS=1 (.ci/run, which installs it).
"""
import os

import numpy as np
import pytest

try:
    import torch
except ModuleNotFoundError:   # not installed; a broken install fails
    if os.environ.get("CHARRNN_REQUIRE_TOOLS") == "1":
        raise ImportError("PyTorch is not installed, and CHARRNN_REQUIRE_TOOLS=1: .ci/run "
                          "installs it from a local CPU wheel") from None
    pytest.skip("PyTorch not installed (pip install torch==2.13.0, the CPU build)",
                allow_module_level=True)
from safetensors.torch import load_file  # noqa: E402

import charrnn  # noqa: E402
from charrnn.io import checkpoint as ckpt  # noqa: E402
from charrnn.model import CharRNN  # noqa: E402

TORCH_CELL = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU, "rnn": torch.nn.RNN}


class RNNModel(torch.nn.Module):
    """PyTorch's word_language_model RNNModel, without dropout."""

    def __init__(self, cell, V, E, H, L):
        super().__init__()
        self.encoder = torch.nn.Embedding(V, E)
        self.rnn = TORCH_CELL[cell](E, H, L)
        self.decoder = torch.nn.Linear(H, V)

    def forward(self, x, state):
        out, state = self.rnn(self.encoder(x), state)
        return self.decoder(out), state


def torch_model(cfg, path):
    m = RNNModel(cfg["cell"], cfg["vocab_size"], cfg["embed"], cfg["hidden"], cfg["layers"])
    m.load_state_dict(load_file(str(path)), strict=True)
    return m.double()


def torch_state(cell, state):
    h = torch.tensor(np.stack([s[0] for s in state]), dtype=torch.float64)
    if cell == "lstm":
        return (h, torch.tensor(np.stack([s[1] for s in state]), dtype=torch.float64))
    return h


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_checkpoint_loads_strictly_and_matches_loss_and_gradients(cell, tmp_path):
    cfg = dict(cell=cell, hidden=12, layers=2, embed=7, vocab_size=9)
    vocab = list("abcdefgh\n")
    ours = CharRNN(cfg, vocab, seed=3)
    path = tmp_path / "m.safetensors"
    ckpt.save_model(path, ours.params, ours.config, vocab)
    theirs = torch_model(cfg, path)

    ours64 = CharRNN(cfg, vocab, params=ckpt.load_model(path).params, dtype=np.float64)
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 9, (6, 4)), rng.integers(0, 9, (6, 4))
    state = [tuple(0.5 * rng.standard_normal((4, 12)) for _ in s) for s in ours64.init_state(4)]
    loss, grads, new_state = ours64.loss_and_grad(x, y, state)

    logits, tstate = theirs(torch.tensor(x), torch_state(cell, state))
    tloss = torch.nn.functional.cross_entropy(logits.reshape(-1, 9), torch.tensor(y).reshape(-1))
    tloss.backward()
    assert abs(loss - tloss.item()) < 1e-10
    for name, p in theirs.named_parameters():
        np.testing.assert_allclose(grads[name], p.grad.numpy(), rtol=1e-8, atol=1e-12, err_msg=name)
    # the final state of every layer: h, and for the LSTM its cell state c too (a wrong c
    # would leave this step's loss and h right but break the next chunk)
    th = tstate[0] if cell == "lstm" else tstate
    np.testing.assert_allclose(np.stack([s[0] for s in new_state]), th.detach().numpy(), atol=1e-12)
    if cell == "lstm":
        assert all(len(s) == 2 for s in new_state)
        np.testing.assert_allclose(np.stack([s[1] for s in new_state]),
                                   tstate[1].detach().numpy(), atol=1e-12)
    else:
        assert all(len(s) == 1 for s in new_state)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_resets_match_pytorch_running_the_pieces(cell, threads):
    """Network.loss_and_grad(reset=) against PyTorch running, for every stream, the
    pieces between its resets as separate sequences: the first from the given state
    (unless it resets at t = 0), the others from zero; one summed loss, one backward."""
    from charrnn.nn import cells
    V, E, H, L, T, N = 9, 7, 12, 2, 10, 4
    cfg = dict(cell=cell, hidden=H, layers=L, embed=E, vocab_size=V)
    ours = CharRNN(cfg, list("abcdefgh\n"), seed=5, dtype=np.float64)
    if threads > 1:
        ours.parallel = cells.Parallel(threads)
    theirs = RNNModel(cell, V, E, H, L).double()
    theirs.load_state_dict({k: torch.tensor(v) for k, v in ours.params.items()}, strict=True)
    rng = np.random.default_rng(6)
    x, y = rng.integers(0, V, (T, N)), rng.integers(0, V, (T, N))
    reset = rng.random((T, N)) < 0.25
    reset[0, 0] = reset[T - 1, 1] = True
    reset[3, 2] = reset[4, 2] = True
    state = [tuple(0.5 * rng.standard_normal((N, H)) for _ in s) for s in ours.init_state(N)]
    loss, grads, new_state = ours.loss_and_grad(x, y, state, reset=reset)

    total, finals = 0.0, []
    for n in range(N):
        cuts = [0] + [t for t in np.flatnonzero(reset[:, n]) if t > 0] + [T]
        for t0, t1 in zip(cuts[:-1], cuts[1:]):
            fresh = t0 > 0 or reset[0, n]
            s = [tuple(np.zeros((1, H)) if fresh else a[n:n + 1] for a in layer) for layer in state]
            logits, ts = theirs(torch.tensor(x[t0:t1, n:n + 1]), torch_state(cell, s))
            total = total + torch.nn.functional.cross_entropy(
                logits.reshape(-1, V), torch.tensor(y[t0:t1, n]), reduction="sum")
        finals.append(ts)
    (total / (T * N)).backward()
    assert abs(loss - total.item() / (T * N)) < 1e-10
    for name, p in theirs.named_parameters():
        np.testing.assert_allclose(grads[name], p.grad.numpy(), rtol=1e-8, atol=1e-12, err_msg=name)
    for n, ts in enumerate(finals):
        th = ts[0] if cell == "lstm" else ts
        np.testing.assert_allclose([s[0][n] for s in new_state], th[:, 0].detach().numpy(), atol=1e-12)
        if cell == "lstm":
            np.testing.assert_allclose([s[1][n] for s in new_state], ts[1][:, 0].detach().numpy(),
                                       atol=1e-12)


def test_trained_run_loads_into_pytorch(tmp_path):
    p = tmp_path / "c.txt"
    p.write_text("the quick brown fox jumps over the lazy dog\n" * 40)
    run = tmp_path / "run"
    charrnn.train(str(p), out=str(run), quiet=True, hidden=16, layers=2, embed=8,
                  seq_len=8, batch_size=4, max_steps=5, eval_every=5, max_minutes=0)
    model = charrnn.load(run)
    theirs = torch_model(model.config, run / "model.safetensors")
    x = np.array([[model.vocab.index(c)] for c in "the quick"])
    logits, _ = theirs(torch.tensor(x), None)
    ours = CharRNN(model.config, model.vocab, params=model.params, dtype=np.float64)
    loss, _ = ours.loss(x[:-1], x[1:])
    tloss = torch.nn.functional.cross_entropy(logits[:-1].reshape(len(x) - 1, -1),
                                              torch.tensor(x[1:]).reshape(-1))
    assert abs(loss - tloss.item()) < 1e-9
