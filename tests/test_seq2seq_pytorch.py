"""The encoder-decoder against PyTorch, an independent reader: a test-only torch module
with our weights (the encoder torch.nn.LSTM / GRU(bidirectional=True) over a
pack_padded_sequence, the decoder torch.nn.LSTMCell / GRUCell, the attention written out
with a -inf length mask) must give the same loss and every gradient, with dropout's masks and label smoothing
(torch's cross_entropy(label_smoothing=)) too. Skips without
torch, like test_pytorch_interop.py."""
import itertools
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

from charrnn.nn import reference_seq2seq as rs  # noqa: E402
from charrnn.nn.network import StreamMasks  # noqa: E402
from charrnn.nn.seq2seq import BOS, Seq2Seq  # noqa: E402


class TorchSeq2Seq(torch.nn.Module):
    def __init__(self, cell, attention, Vs, Vt, E, He, Hd, A, L):
        super().__init__()
        self.cell, self.attention = cell, attention
        self.src_embed = torch.nn.Parameter(torch.zeros(Vs, E, dtype=torch.float64))
        rnn = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[cell]
        self.enc = rnn(E, He, L, bidirectional=True).double()
        self.tgt_embed = torch.nn.Parameter(torch.zeros(Vt, E, dtype=torch.float64))
        step = {"lstm": torch.nn.LSTMCell, "gru": torch.nn.GRUCell}[cell]
        self.dec = step(E + 2 * He, Hd).double()
        self.W_k = torch.nn.Parameter(torch.zeros(2 * He, A, dtype=torch.float64))
        if attention == "bahdanau":
            self.W_q = torch.nn.Parameter(torch.zeros(Hd, A, dtype=torch.float64))
            self.v = torch.nn.Parameter(torch.zeros(A, dtype=torch.float64))
        self.out = torch.nn.Linear(Hd + 2 * He, Vt).double()

    def load(self, params):
        names = {"attn.W_k": "W_k", "attn.W_q": "W_q", "attn.v": "v"}
        state = {names.get(k, k): torch.tensor(v) for k, v in params.items()}
        self.load_state_dict(state, strict=True)

    def forward(self, src, src_len, tgt, tgt_len, masks=None, smoothing=0.0):
        """masks: dropout's (S, N, E), (T, N, E), (T, N, Hd + C) factors, or None;
        smoothing: cross_entropy's label_smoothing."""
        S, N = src.shape
        ms, mt, mf = (torch.tensor(m) for m in masks) if masks is not None else (1, [1] * S, 1)
        x = self.src_embed[src] * ms                                   # (S, N, E)
        packed = pack_padded_sequence(x, torch.tensor(src_len), enforce_sorted=False)
        e, _ = pad_packed_sequence(self.enc(packed)[0], total_length=S)
        e = e.transpose(0, 1)                                          # (N, S, C)
        keys = e @ self.W_k                                            # (N, S, A)
        mask = torch.arange(S)[None, :] >= torch.tensor(src_len)[:, None]   # (N, S)
        Hd = self.dec.hidden_size
        h = torch.zeros(N, Hd, dtype=torch.float64)
        c = torch.zeros(N, Hd, dtype=torch.float64)
        ctx = torch.zeros(N, e.shape[2], dtype=torch.float64)
        total, count = 0.0, 0
        for s in range(tgt.shape[0] - 1):
            x = torch.cat([self.tgt_embed[tgt[s]] * mt[s], ctx], dim=1)
            if self.cell == "lstm":
                h, c = self.dec(x, (h, c))
            else:
                h = self.dec(x, h)
            if self.attention == "bahdanau":
                score = torch.tanh((h @ self.W_q)[:, None, :] + keys) @ self.v   # (N, S)
            else:
                score = (keys @ h[:, :, None])[:, :, 0]
            alpha = torch.softmax(score.masked_fill(mask, -torch.inf), dim=1)
            ctx = (alpha[:, :, None] * e).sum(dim=1)
            feat = torch.cat([h, ctx], dim=1)
            logits = self.out(feat if masks is None else feat * mf[s])
            live = torch.tensor(s < tgt_len)
            lp = -torch.nn.functional.cross_entropy(logits, tgt[s + 1], reduction="none",
                                                    label_smoothing=smoothing)
            total = total - (lp * live).sum()
            count += int(live.sum())
        return total / count


def masks_in_row_order(keys, p, src, tgt_len, E, F):
    """The dropout masks StreamMasks(*keys) gives the model for this batch, moved back
    to the caller's row order (the model draws them after sorting rows longest first)."""
    (S, N), T = src.shape, int(tgt_len.max())
    order = np.argsort(-tgt_len, kind="stable")
    out = []
    for site, (t, d) in enumerate(((S, E), (T, E), (T, F))):
        m = StreamMasks(*keys).mask(site, t, N, d, p, np.dtype(np.float64)).reshape(t, N, d)
        back = np.empty_like(m)
        back[:, order] = m
        out.append(back)
    return out


@pytest.mark.parametrize("cell,attention", list(itertools.product(["lstm", "gru"], rs.ATTENTIONS)))
@pytest.mark.parametrize("L,dropout,smoothing", [(1, 0.0, 0.0), (2, 0.0, 0.0), (1, 0.3, 0.0),
                                                 (2, 0.0, 0.2), (1, 0.3, 0.1)])
def test_loss_and_gradients_match_torch(cell, attention, L, dropout, smoothing):
    sizes = dict(embed=3, hidden=4, decoder=5, attn=6, src_vocab=7, tgt_vocab=8, layers=L)
    m = Seq2Seq(dict(sizes, cell=cell, attention=attention, dropout=dropout), dtype=np.float64)
    rng = np.random.default_rng(0)
    for p in m.params.values():
        p[...] = rng.uniform(-0.7, 0.7, p.shape)
    S, T, N = 6, 5, 4
    src = rng.integers(0, 7, (S, N))
    src_len = np.array([6, 1, 4, 2])
    tgt = rng.integers(2, 8, (T + 1, N))
    tgt[0] = BOS
    tgt_len = np.array([3, 5, 1, 2])
    masks = None
    if dropout:
        m.grad_flat.fill(0)
        loss = m.forward_backward(src, src_len, tgt, tgt_len, rng=StreamMasks(5, 2),
                                  smoothing=smoothing)
        grads = m.grads
        masks = masks_in_row_order((5, 2), dropout, src, tgt_len, 3, 5 + 8)
    else:
        loss, grads = m.loss_and_grad(src, src_len, tgt, tgt_len, smoothing)
    tm = TorchSeq2Seq(cell, attention, 7, 8, 3, 4, 5, 6 if attention == "bahdanau" else 5, L)
    tm.load(m.params)
    tloss = tm(torch.tensor(src), src_len, torch.tensor(tgt), tgt_len, masks, smoothing)
    tloss.backward()
    assert abs(loss - tloss.item()) < 1e-10
    tgrads = {n: p.grad.numpy() for n, p in tm.named_parameters()}
    names = {"W_k": "attn.W_k", "W_q": "attn.W_q", "v": "attn.v"}
    assert sorted(names.get(n, n) for n in tgrads) == sorted(grads)
    for n, g in tgrads.items():
        np.testing.assert_allclose(grads[names.get(n, n)], g, atol=1e-10, err_msg=n)
