"""How right a transducer is: word error rate and token error rate against references,
where one source may have several (CMUdict lists some words more than once).

    edit_distance(a, b)                          Levenshtein distance of two sequences
    error_rates(refs, hyps)                      refs: {source: [reference token lists]},
                                                 hyps: {source: hypothesis token list}
        -> {"words", "word_errors", "wer", "token_errors", "tokens", "ter"}
    decoded_error_rates(t, sources, targets)     error_rates of what t (a Transducer or an
                                                 Ensemble) decodes for the sources

A word (a distinct source) is right when its hypothesis equals ANY of its references.
Token errors: the edit distance to the nearest reference (the first of equals), over
that reference's length; TER is their sum over all words divided by the summed lengths.
"""


def edit_distance(a, b):
    """Insertions, deletions and substitutions turning sequence a into sequence b."""
    a, b = list(a), list(b)
    prev = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        cur = [i]
        for j, y in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (x != y)))
        prev = cur
    return prev[-1]


def error_rates(refs, hyps):
    """Word and token error rates of hyps against refs (see the module docstring)."""
    words = word_errors = token_errors = tokens = 0
    for source, options in refs.items():
        hyp = list(hyps[source])
        words += 1
        word_errors += not any(list(r) == hyp for r in options)
        d, ref = min(((edit_distance(r, hyp), list(r)) for r in options), key=lambda x: x[0])
        token_errors += d
        tokens += len(ref)
    return {"words": words, "word_errors": word_errors,
            "wer": word_errors / words if words else None,
            "token_errors": token_errors, "tokens": tokens,
            "ter": token_errors / tokens if tokens else None}


def group_references(sources, targets, split):
    """{source: [reference token lists]} in the order sources first appear."""
    refs = {}
    for s, t in zip(sources, targets):
        refs.setdefault(s, []).append(split(t))
    return refs


def decoded_error_rates(t, sources, targets, beam=1, threads=1):
    """error_rates of the outputs t (a Transducer or an Ensemble: its split and
    transduce) decodes for each distinct source, against all of that source's targets."""
    refs = group_references(sources, targets, t.split)
    words = list(refs)
    return error_rates(refs, dict(zip(words, map(t.split, t.transduce(words, beam,
                                                                      threads=threads)))))
