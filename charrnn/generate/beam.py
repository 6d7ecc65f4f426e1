"""Beam search: the most likely continuation of a prime, rather than a random one.

    beams = beam_search(sampler, prime="ROMEO:", length=200, beam=8, num_results=3)
    beams[0].text, beams[0].logprob, beams[0].score

K beams advance together through the compiled batched step (kernels/_sample.pyx,
Run.beam: one matrix product per layer per step for all K beams); at each step the K best
of the K*V one-character extensions are chosen and the states reordered to match, in C
(kernels/loopctl.h). The beams are scored by the sum of the natural-log probabilities of
their generated characters; `score` divides that by the number of characters (nats per
character, length-normalised). Every beam has `length` characters, so both orders agree.
Ties go to the earlier beam, then the smaller character id: the result is deterministic
(no temperature, no random numbers). K = 1 is greedy decoding.

no_repeat N applies as in sampling: no beam completes a character N-gram it already
generated. Beam search on a character model tends to loop ("the state of the state
of ..."): no_repeat is its usual companion.
"""
from dataclasses import dataclass

import numpy as np

from charrnn.errors import ConfigError
from charrnn.generate.options import _count

CHUNK = 256    # steps per call into the compiled loop


@dataclass(frozen=True)
class Beam:
    text: str        # the prime, then the generated characters
    logprob: float   # sum of the generated characters' natural-log probabilities
    length: int      # generated characters (for byte-level models, bytes)

    @property
    def score(self):
        """Length-normalised score: mean log-probability per character (nats)."""
        return self.logprob / self.length


def check_beam(beam):
    if isinstance(beam, bool) or not isinstance(beam, (int, np.integer)) or beam < 1:
        raise ConfigError(f"beam must be a whole number >= 1 (the number of beams), "
                          f"got {beam!r}")
    return int(beam)


def beam_search(sampler, prime="", length=200, beam=4, num_results=1, no_repeat=None):
    """The num_results (<= beam) best of `beam` beams, best first: a list of Beam."""
    K = check_beam(beam)
    length = _count(length, "length")
    N = _count(num_results, "num_results")
    if N > K:
        raise ConfigError(f"num_results {N} is more than the {K} beams kept; use "
                          f"--beam {N} or more")
    run, prime_text = sampler._start_run(prime, 0.0, None, None, 0, K, no_repeat)
    ids = np.empty((length, K), np.int32)
    parents = np.empty((length, K), np.int32)
    for t in range(0, length, CHUNK):   # Ctrl-C is seen between chunks
        run.beam(ids[t:], parents[t:], min(CHUNK, length - t))
    scores = run.beam_scores()
    live = [k for k in range(N) if np.isfinite(scores[k])]   # fewer if V**length < K
    # Walk the back-pointers from each final beam to the first step.
    seqs = np.empty((len(live), length), np.int32)
    k = np.array(live, np.intp)
    for t in range(length - 1, -1, -1):
        seqs[:, t] = ids[t, k]
        k = parents[t, k]
    return [Beam(prime_text + sampler.ids_to_text(seqs[j]), float(scores[live[j]]), length)
            for j in range(len(live))]
