"""Scoring text as a few long streams: validation during training and `charrnn eval`.

    ids (n,) --> B streams of L = (n - 1) // B targets, read in windows of T with the
                 state carried; the last (n - 1) - B*L targets as one more stream

Every character after the first is scored exactly once, whatever B and T are, so the
held-out part never needs --batch-size streams of --seq-len + 1: a 300-character
held-out part is one stream. B only trades speed (larger matrix products) for the few
characters each stream starts without context.
"""
import numpy as np

MAX_SCORED = 1 << 18   # validation during training scores at most this many characters
                       # (262,144): on a 300 MB corpus the whole held-out part would cost
                       # minutes per evaluation; `charrnn eval` scores everything
MIN_STREAM = 1024      # characters per stream at least, when the text allows


def streams_for(targets, max_streams, seq_len):
    """How many parallel streams to cut `targets` scored characters into."""
    return int(max(1, min(max_streams, targets // max(MIN_STREAM, 8 * seq_len))))


def score(model, ids, seq_len=64, streams=32):
    """(total loss in nats, characters scored) of model on ids: every id after the first."""
    targets = len(ids) - 1
    if targets < 1:
        return 0.0, 0
    B = max(1, min(streams, targets))
    L = targets // B
    total = 0.0
    if L:
        X = np.asarray(ids[:B * L], np.int32).reshape(B, L)          # (B, L) streams
        Y = np.asarray(ids[1:B * L + 1], np.int32).reshape(B, L)
        state = None
        for t in range(0, L, seq_len):
            x = np.ascontiguousarray(X[:, t:t + seq_len].T)          # (T, B)
            y = np.ascontiguousarray(Y[:, t:t + seq_len].T)
            loss, state = model.loss(x, y, state)
            total += loss * x.size
    if targets > B * L:   # fewer left over than streams: one more stream, from zero state
        rest = np.asarray(ids[B * L:], np.int32)
        for t in range(0, len(rest) - 1, seq_len):
            piece = rest[t:t + seq_len + 1]
            loss, _ = model.loss(np.ascontiguousarray(piece[:-1, None]),
                                 np.ascontiguousarray(piece[1:, None]))
            total += loss * (len(piece) - 1)
    return total, targets


class HeldOut:
    """The validation part of a run: its first MAX_SCORED characters, scored as a few
    long streams. .mean_loss(model) is nats per character."""

    def __init__(self, ids, seq_len, max_streams):
        self.ids = ids[:MAX_SCORED + 1]
        self.seq_len = seq_len
        self.streams = streams_for(len(self.ids) - 1, max_streams, seq_len)

    def __len__(self):
        return max(0, len(self.ids) - 1)

    def mean_loss(self, model):
        total, n = score(model, self.ids, self.seq_len, self.streams)
        return total / n
