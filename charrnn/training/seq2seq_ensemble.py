"""Several transducers as one: their candidates, re-ranked by all of them.

    from charrnn.training.seq2seq_ensemble import Ensemble
    ens = Ensemble([load_transducer("runs/a"), load_transducer("runs/b")])
    ens.transduce(["hello"], beam=4)          # -> ["HH AH0 L OW1"]
    ens.nbest(["read"], 3)                    # -> [[("R IY1 D", -0.4), ...]]
    ens.score(sources, targets, beam=4)       # word and token error rates, as Transducer's

Why: models trained from different seeds err on different words, and the published
CMUdict figures that lead (Toshniwal and Livescu 2016, 20.24% WER) are ensembles. Two
models trained side by side on a 2-core machine, one thread each, train 1.35x the pairs
of one model on both cores, and as one they beat it by about a point of WER
(docs/seq2seq-ensembles.md).

How (n-best re-ranking): every member proposes its `beam` best outputs of a source (its
greedy output when beam is 1); every member then scores every proposal, teacher-forced
(charrnn.nn.seq2seq_decode.score_targets: the log-probability of its tokens and EOS, the
score its own search gives a finished hypothesis, which is taken from the search for the
member's own proposals); the ensemble's score of a proposal is
the mean of its members' (the log of their probabilities' geometric mean: a log-linear
combination). The best proposal wins; ties go to the earlier proposal (members in the
order given, each member's list best first). A proposal with a token some member never
saw scores -inf for that member, so it loses to any proposal all members know.

This is not a joint beam search over the averaged distribution, which could find an
output no member ranks among its `beam` best; on CMUdict two members' 4 best hold a
right pronunciation for 88% of the words, and the ensemble picks a right one for 67%, so
the candidates are seldom what limits it. With one member it is that member (the
same outputs, the same scores).

Members must agree on what an output is: the same tokens ("chars" or "words"); their
vocabularies may differ (each encodes sources with its own).
"""
import numpy as np

from charrnn.errors import ConfigError
from charrnn.nn.seq2seq_decode import check_counts, score_targets
from charrnn.training.seq2seq import Transducer
from charrnn.training.seq2seq_score import decoded_error_rates

ROWS = 512   # decoder rows (proposals) per teacher-forced scoring pass


class Ensemble:
    def __init__(self, members):
        members = list(members)
        if not members:
            raise ConfigError("an ensemble needs at least one transducer")
        kinds = {m.tokens for m in members}
        if len(kinds) > 1:
            raise ConfigError("the transducers' outputs differ in kind: some write characters, "
                              "some space-separated tokens (--target-tokens)")
        self.members = members
        self.tokens = members[0].tokens
        self.max_len = max(m.max_len for m in members)
        self.split, self.join = members[0].split, members[0].join

    def logprobs(self, sources, outputs, threads=1, known=None):
        """(members, pairs) float64: each member's log-probability of each output (a
        string, as transduce returns) given its source, EOS included; -inf where the
        output has a token the member does not know. known: None, or (members, pairs)
        scores already known, kept where not NaN (a member's own search scored its
        proposals). threads > 1: members scored at once, one per thread (each has its
        own weights and workspaces)."""
        shape = (len(self.members), len(sources))
        out = np.full(shape, np.nan) if known is None else np.array(known, np.float64)
        if out.shape != shape:
            raise ConfigError(f"known must have shape {shape}, got {out.shape}")

        def one(k):
            m = self.members[k]
            vocab = set(m.tgt_vocab)
            by_source = {}   # source -> the pairs that need its encoding
            for i in np.flatnonzero(np.isnan(out[k])):
                if set(m.split(outputs[i])) <= vocab:
                    by_source.setdefault(sources[i], []).append(i)
                else:
                    out[k, i] = -np.inf
            texts = sorted(by_source, key=len)   # less padding per batch
            lo = 0
            while lo < len(texts):   # sources whose pairs make up to ROWS decoder rows
                hi, rows = lo, 0
                while hi < len(texts) and (hi == lo or rows + len(by_source[texts[hi]]) <= ROWS):
                    rows += len(by_source[texts[hi]])
                    hi += 1
                part = [i for t in texts[lo:hi] for i in by_source[t]]
                of = [j for j, t in enumerate(texts[lo:hi]) for _ in by_source[t]]
                src, src_len = m.encode_sources(texts[lo:hi])
                tgt, tgt_len = m.encode_targets([outputs[i] for i in part])
                out[k, part] = score_targets(m.model, src, src_len, tgt, tgt_len, of)
                lo = hi
        # one model given twice must not run in two threads: its packs are its own buffers
        if threads > 1 and len({id(m.model) for m in self.members}) > 1:
            from concurrent.futures import ThreadPoolExecutor
            with ThreadPoolExecutor(min(threads, len(self.members))) as pool:
                list(pool.map(one, range(len(self.members))))
        else:
            for k in range(len(self.members)):
                one(k)
        return out

    def _proposals(self, texts, beam, max_len, threads):
        """Per text, its distinct proposals in order of first appearance, each with the
        scores its proposers' searches gave it: {output: {member: score}}. Only finished
        hypotheses' scores are kept (a hypothesis cut at max_len is scored without EOS,
        teacher-forced scores with it); greedy decoding gives none."""
        props = [{} for _ in texts]
        for k, m in enumerate(self.members):
            cut = m.max_len if max_len is None else max_len
            if beam == 1:
                lists = [[(o, None)] for o in m.transduce(texts, 1, max_len, threads)]
            else:
                lists = m.nbest(texts, beam, beam, max_len, threads)
            for p, lst in zip(props, lists):
                for o, score in lst:
                    mine = p.setdefault(o, {})
                    if score is not None and len(m.split(o)) < cut:
                        mine[k] = score
        return props

    def nbest(self, texts, n, beam=None, max_len=None, threads=1):
        """Per text, up to n proposals (see the module docstring; beam: n unless wider)
        best first by the members' mean log-probability: [(output, score), ...]."""
        beam = n if beam is None else beam
        check_counts(beam=beam, n=n)
        props = self._proposals(texts, beam, max_len, threads)
        flat_src = [t for t, ps in zip(texts, props) for _ in ps]
        flat_out = [o for ps in props for o in ps]
        known = np.full((len(self.members), len(flat_out)), np.nan)
        for j, scores in enumerate(s for ps in props for s in ps.values()):
            for k, v in scores.items():
                known[k, j] = v
        mean = (self.logprobs(flat_src, flat_out, threads, known).mean(0) if flat_out
                else np.empty(0))
        result, at = [], 0
        for ps in props:
            outs, scores = list(ps), mean[at:at + len(ps)]
            at += len(ps)
            order = sorted(range(len(ps)), key=lambda j: -scores[j])   # stable: ties keep order
            result.append([(outs[j], float(scores[j])) for j in order[:n]])
        return result

    @property
    def joint(self):
        """The first member's joint model (charrnn.nn.graphones), if it has one."""
        return self.members[0].joint

    def transduce(self, texts, beam=1, max_len=None, threads=1):
        """The ensemble's output for each text: the best of the members' proposals, by
        their mean log-probability, plus the first member's joint model's weighted one
        when it has a joint model and beam > 1 (as Transducer.transduce)."""
        if beam > 1 and self.joint is not None:
            every = self.nbest(texts, beam * len(self.members), beam, max_len, threads)
            return self.joint.pick(texts, every, self.split)
        return [lst[0][0] if lst else "" for lst in self.nbest(texts, 1, beam, max_len, threads)]

    def score(self, sources, targets, beam=1, threads=1):
        """Transducer.score's error rates for the ensemble's outputs, and its loss: the
        mean over the known pairs' tokens (EOS included) of the negative mean log-probability
        the members give them."""
        r = decoded_error_rates(self, sources, targets, beam, threads)
        lp = self.logprobs(list(sources), list(targets), threads).mean(0)
        ok = np.isfinite(lp)
        count = sum(len(self.split(t)) + 1 for t, k in zip(targets, ok) if k)
        r.update(pairs=len(sources), loss=float(-lp[ok].sum() / count) if count else None,
                 unknown_targets=int((~ok).sum()), members=len(self.members))
        return r

    evaluate = Transducer.evaluate   # score() on a source<TAB>target file
