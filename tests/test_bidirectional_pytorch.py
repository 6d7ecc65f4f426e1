"""Bidirectional stacks and the classifier against PyTorch, an independent reader:
torch.nn.LSTM / GRU / RNN(bidirectional=True) fed a pack_padded_sequence, with our
parameters loaded by name (strict), must give the same outputs, final states, loss and
every gradient. Skips without torch, like test_pytorch_interop.py."""
import os

import numpy as np
import pytest

try:
    import torch
except ModuleNotFoundError:   # not installed; a broken install fails
    if os.environ.get("CHARRNN_REQUIRE_TOOLS") == "1":
        raise ImportError("PyTorch is not installed, and CHARRNN_REQUIRE_TOOLS=1") from None
    pytest.skip("PyTorch not installed (pip install torch==2.13.0, the CPU build)",
                allow_module_level=True)
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence  # noqa: E402

from charrnn.nn import bidirectional as bi  # noqa: E402
from charrnn.nn import reference_bidir as rb  # noqa: E402

TORCH_CELL = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU, "rnn": torch.nn.RNN}


def torch_stack(cell, D, H, L, params):
    m = TORCH_CELL[cell](D, H, L, bidirectional=True).double()
    m.load_state_dict({k: torch.tensor(v) for k, v in params.items()}, strict=True)
    assert list(dict(m.named_parameters())) == list(rb.param_shapes(cell, D, H, L))
    return m


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
@pytest.mark.parametrize("L", [1, 2])
def test_stack_matches_torch_packed_bidirectional(cell, L):
    T, N, D, H = 7, 5, 3, 4
    lengths = np.array([7, 1, 4, 7, 2])
    rng = np.random.default_rng(0)
    params = {k: rng.uniform(-0.6, 0.6, s) for k, s in rb.param_shapes(cell, D, H, L).items()}
    x = rng.standard_normal((T, N, D))
    for n, l in enumerate(lengths):
        x[l:, n] = 0.0   # torch reads nothing there either, but its gradient has a slot
    dout = rng.standard_normal((T, N, 2 * H))
    dfin = [rng.standard_normal((2 * L, N, H)) for _ in range(2 if cell == "lstm" else 1)]

    out, finals, cache = bi.forward(cell, x, lengths, params)
    grads = {k: np.zeros_like(v) for k, v in params.items()}
    dx = bi.backward(dout, tuple(dfin), cache, grads)

    m = torch_stack(cell, D, H, L, params)
    xt = torch.tensor(x, requires_grad=True)
    packed = pack_padded_sequence(xt, torch.tensor(lengths), enforce_sorted=False)
    tout, tstate = m(packed)
    tout, _ = pad_packed_sequence(tout, total_length=T)
    tstate = tstate if isinstance(tstate, tuple) else (tstate,)
    loss = (tout * torch.tensor(dout)).sum() + sum((s * torch.tensor(d)).sum()
                                                   for s, d in zip(tstate, dfin))
    loss.backward()
    np.testing.assert_allclose(out, tout.detach().numpy(), atol=1e-12)
    for ours, theirs in zip(finals, tstate):
        np.testing.assert_allclose(ours, theirs.detach().numpy(), atol=1e-12)
    np.testing.assert_allclose(dx, xt.grad.numpy(), atol=1e-11)
    for name, p in m.named_parameters():
        np.testing.assert_allclose(grads[name], p.grad.numpy(), rtol=1e-9, atol=1e-11, err_msg=name)


class TorchClassifier(torch.nn.Module):
    """charrnn.nn.classifier.Classifier written in PyTorch."""

    def __init__(self, cell, V, E, H, L, C, pool):
        super().__init__()
        self.encoder = torch.nn.Embedding(V, E)
        self.rnn = TORCH_CELL[cell](E, H, L, bidirectional=True)
        self.decoder = torch.nn.Linear(2 * H, C)
        self.pool = pool

    def forward(self, ids, lengths):
        packed = pack_padded_sequence(self.encoder(ids), lengths, enforce_sorted=False)
        out, state = self.rnn(packed)
        if self.pool == "final":
            h = state[0] if isinstance(state, tuple) else state
            feat = torch.cat([h[-2], h[-1]], dim=1)
        else:
            out, _ = pad_packed_sequence(out)
            feat = out.sum(dim=0) / lengths[:, None].to(out.dtype)
        return self.decoder(feat)


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
@pytest.mark.parametrize("pool", ["final", "mean"])
def test_classifier_matches_torch(cell, pool):
    from charrnn.nn.classifier import Classifier
    V, E, H, L, C = 7, 4, 5, 2, 3
    cfg = dict(cell=cell, hidden=H, layers=L, embed=E, vocab_size=V, classes=C, pool=pool)
    ours = Classifier(cfg, seed=2, dtype=np.float64)
    ours.flat[...] = np.random.default_rng(3).uniform(-0.5, 0.5, ours.flat.shape)
    rng = np.random.default_rng(4)
    lengths = np.array([6, 1, 4, 6, 2])
    ids = rng.integers(0, V, (6, 5))
    labels = rng.integers(0, C, 5)
    loss, grads = ours.loss_and_grad(ids, lengths, labels)

    theirs = TorchClassifier(cell, V, E, H, L, C, pool).double()
    assert list(dict(theirs.named_parameters())) == list(ours.shapes)
    theirs.load_state_dict({k: torch.tensor(v) for k, v in ours.params.items()}, strict=True)
    logits = theirs(torch.tensor(ids), torch.tensor(lengths))
    tloss = torch.nn.functional.cross_entropy(logits, torch.tensor(labels))
    tloss.backward()
    assert abs(loss - tloss.item()) < 1e-12
    probs = torch.softmax(logits, dim=1).detach().numpy()
    np.testing.assert_allclose(ours.predict_proba(ids, lengths), probs, atol=1e-12)
    for name, p in theirs.named_parameters():
        np.testing.assert_allclose(grads[name], p.grad.numpy(), rtol=1e-9, atol=1e-12, err_msg=name)
