"""The model a user holds: the network, plus generation, probing, loading and scoring.

    model = charrnn.load("charrnn-runs/corpus-...")     # run directory or .safetensors
    model.generate(prime="ROMEO:", length=300, temperature=0.8)
    for chunk in model.stream(temperature=0.8): ...
    model.probe("ROMEO:\\nWhat light")                   # probs, hidden, cell per character
    charrnn.evaluate(model, "other.txt")                 # loss on a text file

charrnn.nn.network.Network holds the parameters and the forward/backward passes;
CharRNN adds what sits above the network (the sampler, the probe, held-out scoring),
so the layers below never import upward.
"""
import os
from dataclasses import replace

import numpy as np

from pathlib import Path

from charrnn.data.corpus import load_corpus
from charrnn.data.documents import Documents, Known, check_mode
from charrnn.data.heldout import score
from charrnn.data.text import remap_ids
from charrnn.errors import ConfigError, CorpusError
from charrnn.generate import sampler
from charrnn.generate.beam import beam_search
from charrnn.generate.items import sample_items
from charrnn.io import checkpoint, rundir
from charrnn.nn.network import Network
from charrnn.nn.precision import SAMPLE_DEFAULT
from charrnn.nn.probe import probe


class CharRNN(Network):
    """A character-level language model over a fixed vocabulary."""

    source = None   # the run directory it was loaded from (charrnn.load), if any

    def probe(self, text, state=None):
        """What the model predicts and how its units move while reading `text`: a
        charrnn.nn.probe.Probe with probs (T, V), hidden (L, T, H), target_probs, top(t)."""
        return probe(self, text, state)

    # ---- generation (charrnn.generate.sampler runs the per-character loop in C) -------

    def generate(self, prime="", length=500, temperature=1.0, top_k=None, top_p=None,
                 seed=None, num_samples=1, stop=(), beam=None, no_repeat=None,
                 precision=SAMPLE_DEFAULT):
        """Text continuing `prime` (which it starts with): a str, or a list of
        num_samples strs generated together as one batch (or one per temperature if
        temperature is a list). beam=K: the most likely continuation by beam search
        (num_samples <= K: the best ones); no_repeat=N: no character N-gram repeats;
        precision "bf16": weights read in bfloat16 (charrnn.generate.sampler)."""
        if beam is not None:
            if stop or top_k is not None or top_p is not None or \
                    isinstance(temperature, (list, tuple)):
                raise ConfigError("beam search is deterministic: stop, top_k, top_p and a "
                                  "temperature list do not apply to it")
            beams = self.beam_search(prime, length, beam=beam, num_results=num_samples,
                                     no_repeat=no_repeat, precision=precision)
            texts = [b.text for b in beams]
            return texts[0] if num_samples == 1 else texts
        return sampler.generate(self.params, self.config, self.vocab, prime=prime,
                                length=length, temperature=temperature, top_k=top_k,
                                top_p=top_p, seed=seed, num_samples=num_samples, stop=stop,
                                no_repeat=no_repeat, precision=precision)

    def beam_search(self, prime="", length=200, beam=4, num_results=1, no_repeat=None,
                    precision=SAMPLE_DEFAULT):
        """The num_results (<= beam) most likely continuations found by a beam search
        of `beam` beams, best first: a list of charrnn.generate.beam.Beam (text,
        logprob: the sum of the generated characters' log-probabilities, length,
        score: logprob per character)."""
        return beam_search(self._sampler(precision), prime=prime, length=length, beam=beam,
                           num_results=num_results, no_repeat=no_repeat)

    def stream_batch(self, prime="", length=500, temperature=1.0, top_k=None, top_p=None,
                     seed=None, num_samples=1, stop=(), no_repeat=None,
                     precision=SAMPLE_DEFAULT):
        """An iterator of (j, str piece) while num_samples samples are made together:
        the texts generate() returns, piece by piece, in bounded memory."""
        return self._sampler(precision).stream_batch(
            prime=prime, length=length, temperature=temperature, top_k=top_k, top_p=top_p,
            seed=seed, num_samples=num_samples, stop=stop, no_repeat=no_repeat)

    def stream(self, prime="", temperature=1.0, top_k=None, top_p=None, seed=None,
               length=None, stop=(), no_repeat=None, precision=SAMPLE_DEFAULT):
        """An iterator of text chunks as they are generated (unbounded if length is None)."""
        return self._sampler(precision).stream(
            prime=prime, temperature=temperature, top_k=top_k, top_p=top_p, seed=seed,
            length=length, stop=stop, no_repeat=no_repeat)

    def items(self, n, *, novel=False, length=1000, temperature=1.0, top_k=None,
              top_p=None, seed=None, no_repeat=None, known=None, max_draws=None,
              precision=SAMPLE_DEFAULT):
        """n complete documents of a model trained with --docs, made as one batch: a
        charrnn.generate.items.Items (iterate it for the texts; .cut: how many `length`
        cut before their end marker, not well-formed; .dropped: copies novel=True left
        out; .copies, .draws). Each starts from a zero state fed the end marker, as a
        training document did, and ends where the model emits it again.

        known: the training documents' fingerprints (a run directory, or a
        charrnn.data.documents.Known); default: those of the run the model was loaded
        from, if it has them. novel=True drops items found verbatim among them and
        draws again, up to max_draws (default 10 x n) items in all."""
        if known is None:
            known = self.source
        if known is not None and not isinstance(known, Known):
            known = load_known(known, required=novel)
        return sample_items(self._sampler(precision), n, length=length, temperature=temperature,
                            top_k=top_k, top_p=top_p, seed=seed, no_repeat=no_repeat,
                            known=known, novel=novel, max_draws=max_draws)

    def _sampler(self, precision=SAMPLE_DEFAULT):
        # Built per call: the parameters may have changed in place (training) since.
        return sampler.Sampler(self.params, self.config, self.vocab, precision=precision)


def load(path, best=False):
    """A CharRNN from a run directory (its model.safetensors, or best.safetensors if
    best) or a .safetensors file. Raises CheckpointError with a one-line reason (a
    classifier's run, --task classify: charrnn.load_classifier loads it)."""
    found = rundir.find_checkpoint(path, best=best)
    ck = checkpoint.load_model(found)
    model = CharRNN(ck.config, ck.vocab, params=ck.params)
    model.source = found.parent   # its run directory (the training documents, for items)
    return model


def load_known(run_dir, required=True):
    """The training documents' fingerprints a run directory keeps (documents.npy; a
    checkpoint file's directory is its run's). None if it has none and not required."""
    p = Path(run_dir)
    path = (p if p.is_dir() else p.parent) / rundir.DOCUMENTS_FILE
    try:
        return Known.load(path)
    except (OSError, ValueError):
        if not required:
            return None
        raise CorpusError(f"{p} has no readable {rundir.DOCUMENTS_FILE} (the fingerprints "
                          "of its training documents, written by `charrnn train --docs`): "
                          "pass the run directory the model was trained in") from None


def evaluate(model, path, encoding=None, seq_len=64, batch_size=32, encoding_errors="strict",
             unknown="error", docs="none"):
    """Loss of `model` on a text file: dict(loss nats/char, bpc, chars scored, skipped).

    `model` is a CharRNN, a run directory (its best.safetensors, as `charrnn eval`
    loads) or a .safetensors file. Any text the model can read is scored, one repeated
    character too. unknown: characters the model never saw are an error ("error") or
    left out ("skip"; `skipped` counts them). docs "lines" or "files" (a model trained
    with --docs): the file is scored as documents, laid out as training lays them out
    (charrnn.data.documents), each end marker scored too.

    Every character after the first is scored. The text is cut into up to batch_size
    parallel streams, each read in windows of seq_len with its state carried (as in
    validation); the few characters left over (fewer than the streams) are scored as
    one more stream from a zero state.
    """
    if isinstance(model, (str, os.PathLike)):
        model = load(model, best=True)
    elif not isinstance(model, CharRNN):
        raise ConfigError(f"expected a CharRNN, a run directory or a .safetensors path, not "
                          f"{type(model).__name__}")
    if unknown not in ("error", "skip"):
        raise ConfigError(f"unknown must be 'error' or 'skip', not {unknown!r}")
    check_mode(docs)
    if (docs != "none") != bool(model.cfg.end_marker):
        raise ConfigError("this model was trained on documents: pass --docs lines or --docs "
                          "files to score the file as documents" if docs == "none" else
                          "this model was trained without documents: leave out --docs")
    corpus = load_corpus(path, encoding=encoding or model.cfg.encoding,
                         errors=encoding_errors, training=False)
    if docs != "none":
        laid = Documents(corpus, docs, seed=0)
        corpus = replace(corpus, ids=laid.lay_out(), vocab=laid.vocab)
    ids, skipped = (remap_ids(corpus, model.vocab, unknown) if corpus.vocab != model.vocab
                    else (corpus.ids, 0))
    targets = len(ids) - 1
    if targets < 1:
        raise CorpusError(f"{path} is too short to evaluate: at least 2 characters the model "
                          f"knows are needed ({len(ids)} read, {skipped:,} unknown skipped)")
    total, _ = score(model, ids, seq_len, max(1, min(batch_size, targets // seq_len)))
    return {"loss": float(total / targets), "bpc": float(total / targets / np.log(2)),
            "chars": targets, "skipped": skipped}
