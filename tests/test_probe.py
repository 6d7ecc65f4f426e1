"""model.probe(text): the float32 kernels' per-character probabilities and hidden
activations, checked against charrnn/reference.py (float64) and against model.loss."""
import numpy as np
import pytest

from charrnn.nn import reference as ref
from charrnn.errors import ConfigError
from charrnn.model import CharRNN
from charrnn.inspect.hidden_units import correlations, features, interesting_units

TEXT = 'ROMEO:\nSay "to be (or not) to be"; so it is.\n\nJULIET:\nWhat, ho!\n' * 2
VOCAB = sorted(set(TEXT))


def reference_probe(model, text):
    """Embedding, layers and decoder in float64 through charrnn.reference."""
    p = {k: v.astype(np.float64) for k, v in model.params.items()}
    ids = np.array([model.vocab.index(c) for c in text])
    x = p["encoder.weight"][ids][:, None, :]                       # (T, 1, E)
    H, hidden, cell = model.cfg.hidden, [], []
    for k in range(model.cfg.layers):
        w = [p[f"rnn.{n}_l{k}"] for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
        h0 = np.zeros((1, H))
        if model.cfg.cell == "lstm":
            y, _, _, cache = ref.lstm_forward(x, h0, np.zeros((1, H)), *w)
            cell.append(cache["c"][:, 0])
        else:
            y, _, _ = getattr(ref, f"{model.cfg.cell}_forward")(x, h0, *w)
        hidden.append(y[:, 0])
        x = y
    logits = hidden[-1] @ p["decoder.weight"].T + p["decoder.bias"]
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return ids, e / e.sum(axis=1, keepdims=True), np.stack(hidden), cell


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_probe_equals_the_reference(cell):
    model = CharRNN(dict(cell=cell, hidden=24, layers=2, embed=10, vocab_size=len(VOCAB)),
                    VOCAB, seed=3)
    # larger weights than at init, so the probabilities are far from uniform
    for name, v in model.params.items():
        v *= 40 if name.startswith("decoder") else 3
    p = model.probe(TEXT)
    ids, probs, hidden, cells = reference_probe(model, TEXT)
    T = len(TEXT)
    assert p.probs.shape == (T, len(VOCAB)) and p.hidden.shape == (2, T, 24)
    np.testing.assert_array_equal(p.ids, ids)
    np.testing.assert_allclose(p.hidden, hidden, atol=2e-5)
    np.testing.assert_allclose(p.probs, probs, atol=2e-5, rtol=1e-4)
    np.testing.assert_allclose(p.probs.sum(axis=1), 1, atol=1e-12)
    assert p.probs.max() > 0.5                       # the test is not about uniform rows
    if cell == "lstm":
        np.testing.assert_allclose(p.cell, np.stack(cells), atol=2e-5)
    else:
        assert p.cell is None
    tp = probs[np.arange(T - 1), ids[1:]]
    np.testing.assert_allclose(p.target_probs, tp, rtol=1e-4)
    assert p.top(5, k=5)[0] == (VOCAB[int(np.argmax(probs[5]))], pytest.approx(probs[5].max(), rel=1e-4))
    assert [q for _, q in p.top(5)] == sorted((q for _, q in p.top(5)), reverse=True)


def test_probe_loss_is_the_models_loss_and_state_carries():
    model = CharRNN(dict(cell="gru", hidden=16, layers=2, embed=8, vocab_size=len(VOCAB)),
                    VOCAB, seed=1)
    ids = np.array([VOCAB.index(c) for c in TEXT])
    loss, _ = model.loss(ids[:-1, None], ids[1:, None])
    p = model.probe(TEXT)
    assert p.loss == pytest.approx(loss, rel=1e-5)
    # a state carried over: probing the second half from the first half's final state
    # gives what probing the whole text gives there
    half = len(TEXT) // 2
    _, state = model.loss(ids[:half, None], ids[1:half + 1, None])
    tail = model.probe(TEXT[half:], state=state)
    np.testing.assert_allclose(tail.hidden, p.hidden[:, half:], atol=1e-5)
    np.testing.assert_allclose(tail.probs, p.probs[half:], atol=1e-6)
    head = model.probe(TEXT[:half])                   # or from a probe's own final state
    again = model.probe(TEXT[half:], state=head.state)
    np.testing.assert_allclose(again.hidden, p.hidden[:, half:], atol=1e-5)
    for (a,), (b,) in zip(head.state, state):
        np.testing.assert_allclose(a, b, atol=1e-6)


def test_probe_rejects_bad_text():
    model = CharRNN(dict(cell="rnn", hidden=4, layers=1, embed=3, vocab_size=3), list("abc"))
    with pytest.raises(ConfigError, match="empty"):
        model.probe("")
    with pytest.raises(ConfigError, match="never saw"):
        model.probe("abz")


def test_features_and_the_unit_that_tracks_one():
    text = 'ab "cd" (e)\nXY: f\n'
    f = features(text)
    assert f["position in line"].tolist() == [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 0,
                                              1, 2, 3, 4, 5, 0]
    assert f["inside quotes"].tolist()[3:7] == [1, 1, 1, 0]          # from " to before "
    assert f["inside brackets"].tolist()[8:11] == [1, 1, 0]
    assert f["upper-case line"].tolist()[12:18] == [1, 1, 1, 1, 0, 0]
    # a planted unit that is the position in line (scaled), among noise: found, r = 1
    rng = np.random.default_rng(0)
    T = len(TEXT)
    hidden = rng.uniform(-1, 1, (2, T, 8))
    hidden[1, :, 5] = 0.05 * features(TEXT)["position in line"] - 0.5
    r = correlations(hidden, features(TEXT)["position in line"])
    assert r.shape == (2, 8) and r[1, 5] == pytest.approx(1.0)
    units = interesting_units(TEXT, hidden)
    top = units[0]
    assert (top.feature, top.layer, top.index) == ("position in line", 1, 5)
    assert len({(u.layer, u.index) for u in units}) == len(units)    # never the same unit twice
