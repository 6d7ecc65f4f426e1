"""Training a transducer (string -> string or token sequence) from pairs, in Python.

    from charrnn.training.seq2seq import train_seq2seq
    t = train_seq2seq([("cat", "K AE1 T"), ...], tokens="words", steps=2000)
    t.transduce(["dog"])                   # -> ["D AO1 G"]
    t.transduce(["dog"], beam=5)           # beam search
    t.nbest(["dog"], 3)                    # -> [[("D AO1 G", -0.02), ...]]: 3 best, scored

The model is charrnn.nn.seq2seq.Seq2Seq (float32, Adam, global-norm clipping): source
characters -> bidirectional encoder -> attention -> LSTM/GRU decoder -> target tokens.
Targets are characters (tokens="chars") or space-separated tokens (tokens="words", e.g.
phonemes). Source vocabulary: the training sources' characters, sorted, after id 0 (any
character not seen in training). Target vocabulary: BOS (id 0), EOS (id 1), then the
training targets' tokens, sorted. Each step draws batch_size pairs at random (seeded).
Transducer.save(path) / load_transducer(path): one safetensors file (the parameters by
name; config, vocabularies and a format tag in its metadata, with charrnn.io's checksum).
On the command line: `charrnn train --task seq2seq` (charrnn.training.seq2seq_run),
`charrnn transduce`, `charrnn eval`; load_transducer takes a run directory too.
"""
import json
from dataclasses import dataclass, field

import numpy as np

from charrnn.errors import CheckpointError, ConfigError, CorpusError
from charrnn.data.pairs import read_pairs
from charrnn.io import rundir
from charrnn.io import safetensors_file as sf
from charrnn.io.joint_file import joint_path, load_joint, save_joint
from charrnn.nn import optim
from charrnn.nn.classifier import pad_batch
from charrnn.nn.network import StreamMasks
from charrnn.nn.parallel import Parallel
from charrnn.nn.seq2seq import BOS, EOS, Seq2Seq
from charrnn.nn.seq2seq_decode import beam_search_batch, greedy, nbest_batch
from charrnn.training.seq2seq_score import decoded_error_rates

TOKENS = ("chars", "words")
BATCH = 256   # sources per decoding call (greedy or beam) or loss pass
FORMAT, VERSION = "charrnn-seq2seq", "1"   # the file's metadata "format" and "version"


@dataclass
class Transducer:
    model: Seq2Seq
    src_vocab: list       # characters; src_vocab[i] has id i + 1 (0: unknown)
    tgt_vocab: list       # tokens; tgt_vocab[i] has id i + 2 (0: BOS, 1: EOS)
    tokens: str           # "chars" or "words"
    max_len: int          # default output limit: twice the longest training target + 2
    history: list = field(default_factory=list)   # (step, mean training loss per token)
    info: dict = None     # what a run's checkpoint says (step, val_loss, ...), when loaded
    joint: object = None  # charrnn.nn.graphones.JointModel: re-ranks beam search's n best

    def split(self, target):
        return list(target) if self.tokens == "chars" else target.split()

    def join(self, toks):
        return ("" if self.tokens == "chars" else " ").join(toks)

    @staticmethod
    def check_sources(texts):
        for i, t in enumerate(texts):
            if not isinstance(t, str) or not t:
                raise CorpusError(f"source {i} is {t!r}: every source must be a non-empty string")

    def encode_sources(self, texts):
        """(src (S, N) int32, src_len (N,)) of a list of non-empty strings."""
        index = {c: i + 1 for i, c in enumerate(self.src_vocab)}
        self.check_sources(texts)
        return pad_batch([[index.get(c, 0) for c in t] for t in texts])

    def encode_targets(self, targets):
        """(tgt (T+1, N) int32 starting with BOS, tgt_len (N,) counting EOS)."""
        index = {tok: i + 2 for i, tok in enumerate(self.tgt_vocab)}
        seqs = []
        for i, t in enumerate(targets):
            toks = self.split(t)
            missing = [tok for tok in toks if tok not in index]
            if missing:
                raise CorpusError(f"target {i} has token {missing[0]!r}, not in the vocabulary")
            seqs.append([BOS] + [index[tok] for tok in toks] + [EOS])
        tgt, lens = pad_batch(seqs)
        return tgt, lens - 1

    def transduce(self, texts, beam=1, max_len=None, threads=1):
        """The output string of each text: greedy with beam=1, else beam search; BATCH
        texts per compiled decoding call, `threads` calls at a time. With a joint model
        (self.joint) and beam > 1, the beam's `beam` best are re-ranked by it."""
        if beam > 1 and self.joint is not None:
            lists = self.nbest(texts, beam, beam, max_len, threads)
            return self.joint.pick(texts, lists, self.split)

        def run(src, src_len, max_len):
            if beam == 1:
                return greedy(self.model, src, src_len, max_len)[0]
            return beam_search_batch(self.model, src, src_len, beam, max_len)[0]
        return [self.join(self.tgt_vocab[i - 2] for i in out)
                for out in self._batched(texts, run, max_len, threads)]

    def nbest(self, texts, n, beam=None, max_len=None, threads=1):
        """The n best outputs of each text by beam search (beam: n unless wider), best
        first, as [(output, log-probability), ...]: fewer when fewer finished."""
        beam = n if beam is None else beam
        lists = self._batched(texts, lambda src, src_len, max_len: nbest_batch(
            self.model, src, src_len, beam, max_len, n), max_len, threads)
        return [[(self.join(self.tgt_vocab[i - 2] for i in out), score) for out, score in lst]
                for lst in lists]

    def _batched(self, texts, run, max_len, threads=1):
        """run(src, src_len, max_len) -> one result per text, over batches of BATCH texts
        of similar lengths (less padding for the encoder, and fewer steps where finished
        rows ride along in the decoder); results in the order of texts. With threads > 1
        the batches are decoded that many at a time, each on its own thread: the compiled
        decoding call releases the GIL and batches share nothing, so the outputs are
        those of one thread."""
        if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
            raise ConfigError(f"threads must be a positive integer, got {threads!r}")
        max_len = self.max_len if max_len is None else max_len
        self.check_sources(texts)   # errors name the text's place in `texts`
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        parts = [order[lo:lo + BATCH] for lo in range(0, len(texts), BATCH)]

        def one(part):
            return run(*self.encode_sources([texts[i] for i in part]), max_len)
        if threads > 1 and len(parts) > 1:
            from concurrent.futures import ThreadPoolExecutor
            with ThreadPoolExecutor(min(threads, len(parts))) as pool:
                results = list(pool.map(one, parts))
        else:
            results = map(one, parts)
        outs = [None] * len(texts)
        for part, result in zip(parts, results):
            for i, o in zip(part, result):
                outs[i] = o
        return outs

    def save(self, path, info=None):
        """One safetensors file: parameters by name, everything else in the metadata
        (info: a run's step, losses and error rate, as JSON)."""
        meta = {"info": json.dumps(info or {}), "format": FORMAT, "version": VERSION,
                "config": json.dumps(self.model.config),
                "src_vocab": json.dumps(self.src_vocab, ensure_ascii=False),
                "tgt_vocab": json.dumps(self.tgt_vocab, ensure_ascii=False),
                "tokens": self.tokens, "max_len": str(self.max_len)}
        sf.write(path, dict(self.model.params), meta)
        if self.joint is not None:
            save_joint(self.joint, joint_path(path))

    def loss(self, pairs):
        """Mean cross-entropy per target token (EOS included) over (source, target) pairs."""
        src, src_len = self.encode_sources([s for s, _ in pairs])
        tgt, tgt_len = self.encode_targets([t for _, t in pairs])
        return self.model.loss(src, src_len, tgt, tgt_len)

    def score(self, sources, targets, beam=1, threads=1):
        """dict(pairs, words, wer, ter, loss, ...) of the (source, target) pairs:
        charrnn.training.seq2seq_score.error_rates of the outputs (decoded on `threads`
        threads), and the mean loss per target token (EOS included) over the pairs whose
        tokens the model knows (the others: `unknown_targets`, counted in the error rates
        only)."""
        r = decoded_error_rates(self, sources, targets, beam, threads)
        known = set(self.tgt_vocab)
        ok = [(s, t) for s, t in zip(sources, targets) if set(self.split(t)) <= known]
        total = count = 0.0
        for lo in range(0, len(ok), BATCH):
            chunk = ok[lo:lo + BATCH]
            n = sum(len(self.split(t)) + 1 for _, t in chunk)
            total += float(self.loss(chunk)) * n
            count += n
        r.update(pairs=len(sources), loss=total / count if count else None,
                 unknown_targets=len(sources) - len(ok))
        return r

    def evaluate(self, path, encoding="utf-8", errors="strict", beam=1, threads=1):
        """score() on a source<TAB>target file (charrnn.data.pairs.read_pairs)."""
        pairs = read_pairs(path, encoding, errors, names=("source", "target"))
        return self.score(pairs.left, pairs.right, beam, threads)


def train_seq2seq(pairs, tokens="chars", cell="lstm", attention="luong", embed=32, hidden=64,
                  decoder=128, attn=64, steps=1000, batch_size=32, lr=0.005, grad_clip=5.0,
                  seed=0, log=None, dropout=0.0, threads=1, label_smoothing=0.0):
    """A Transducer trained on `pairs`, a list of (source, target) non-empty strings.
    log: None, or a callable log(step, loss) called every 100 steps. dropout: at
    charrnn.nn.seq2seq.SITES, masks keyed by (seed, step). threads: the model's own
    threads (the encoder's directions, the decoder's rows; the result does not change).
    label_smoothing: in [0, 1), the loss's (charrnn.nn.seq2seq.smoothed_xent)."""
    pairs = list(pairs)
    if not pairs:
        raise CorpusError("no (source, target) pairs to train on")
    if tokens not in TOKENS:
        raise ConfigError(f"tokens must be one of {', '.join(TOKENS)}, not {tokens!r}")
    for i, p in enumerate(pairs):
        if not (isinstance(p, tuple) and len(p) == 2 and all(isinstance(x, str) and x.strip() for x in p)):
            raise CorpusError(f"pair {i} is {p!r}: expected (non-empty source, non-empty target)")
    for name, v in (("steps", steps), ("batch_size", batch_size), ("threads", threads)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ConfigError(f"{name} must be a positive integer, got {v!r}")
    if isinstance(label_smoothing, bool) or not isinstance(label_smoothing, (int, float)) \
            or not 0 <= label_smoothing < 1:
        raise ConfigError(f"label_smoothing must be a number in [0, 1), got {label_smoothing!r}")
    split = list if tokens == "chars" else str.split
    src_vocab = sorted({c for s, _ in pairs for c in s})
    tgt_vocab = sorted({tok for _, t in pairs for tok in split(t)})
    longest = max(len(split(t)) for _, t in pairs)
    cfg = dict(cell=cell, attention=attention, embed=embed, hidden=hidden, decoder=decoder,
               attn=attn, src_vocab=len(src_vocab) + 1, tgt_vocab=len(tgt_vocab) + 2,
               dropout=dropout)
    tr = Transducer(Seq2Seq(cfg, seed=seed), src_vocab, tgt_vocab, tokens, 2 * longest + 2)
    src_all = [s for s, _ in pairs]
    tgt_all = [t for _, t in pairs]
    model, opt = tr.model, optim.Adam(tr.model.flat.size)
    rng = np.random.default_rng(seed)
    model.parallel = Parallel(threads) if threads > 1 else None
    try:
        for step in range(1, steps + 1):
            pick = rng.integers(0, len(pairs), min(batch_size, len(pairs)))
            src, src_len = tr.encode_sources([src_all[i] for i in pick])
            tgt, tgt_len = tr.encode_targets([tgt_all[i] for i in pick])
            model.grad_flat.fill(0)
            masks = StreamMasks(seed + 1, step) if dropout else None
            loss = model.forward_backward(src, src_len, tgt, tgt_len, rng=masks,
                                          smoothing=label_smoothing)
            _, gscale = optim.clip_scale(model.grad_flat, grad_clip)
            opt.step(model.flat, model.grad_flat, lr, gscale, parallel=model.parallel)
            tr.history.append((step, float(loss)))
            if log is not None and step % 100 == 0:
                log(step, float(np.mean([h[1] for h in tr.history[-100:]])))
    finally:
        if model.parallel is not None:
            model.parallel.close()
            model.parallel = None
    return tr


def load_transducer(path, best=True, joint=True):
    """A Transducer from a run directory of `charrnn train --task seq2seq`
    (best.safetensors; model.safetensors when not best) or a file Transducer.save wrote
    (float32); a one-line CheckpointError if it is not one. With joint, its joint model
    too when there is one (charrnn.io.joint_file.joint_path)."""
    path = rundir.find_checkpoint(path, best=best)
    def check(meta):
        if meta.get("format") == "charrnn":
            raise sf.Corrupt("it is a language model, not a transducer: use charrnn "
                             "sample / eval (train one with --task seq2seq)")
        if meta.get("format") == "charrnn-classifier":
            raise sf.Corrupt("it is a classifier, not a transducer: use charrnn classify "
                             "(train one with --task seq2seq)")
        sf.check_format(meta, FORMAT, VERSION, "seq2seq")
    try:
        tensors, meta = sf.read(path, check)
    except sf.Corrupt as e:
        raise CheckpointError(f"cannot load {path}: {e}") from None
    model = Seq2Seq(json.loads(meta["config"]))
    if set(tensors) != set(model.params):
        raise CheckpointError(f"cannot load {path}: its tensors do not fit its config")
    for name, p in model.params.items():
        a = tensors[name][0]
        if a.shape != p.shape:
            raise CheckpointError(f"cannot load {path}: {name} is {a.shape}, expected {p.shape}")
        p[...] = a
    jp = joint_path(path)
    return Transducer(model, json.loads(meta["src_vocab"]), json.loads(meta["tgt_vocab"]),
                      meta["tokens"], int(meta["max_len"]),
                      info=json.loads(meta.get("info") or "{}"),
                      joint=load_joint(jp) if joint and jp.is_file() else None)
