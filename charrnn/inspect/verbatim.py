"""How much of a sample is copied verbatim from the training text.

    copied(sample_ids, text_ids, vocab_size) -> length of the longest substring of the
    sample that occurs in the text, in characters

Shown at every evaluation so that memorisation is visible: a model that has learnt the
text's style writes new strings (the longest shared piece is a few words), one that
memorises its 10 kB corpus reproduces whole lines. A run on documents (--docs) measures
whole items instead: the share of sampled items found verbatim among its documents
(charrnn.data.documents.Known, fingerprints of every document; see
charrnn.training.preview), the items `charrnn sample --items --novel` drops.

Cost: the sample (~200 characters) becomes a suffix automaton (at most 2 x 200 states);
the text then passes through it once in C (charrnn._copylen.scan), a table lookup per
character, ~1-2 ns per character: a few ms for 1 MB, well under a second for 300 MB.
The text is read from its file in blocks when it is memory-mapped, so the pass does not
pull the whole corpus into the process's memory.
"""
import numpy as np

BLOCK = 1 << 22    # characters per block read from a memory-mapped corpus


def automaton(sample):
    """Suffix automaton of a sequence of ints: (trans (S, K), link (S,), length (S,),
    symbols: the K distinct values in order of their symbol number)."""
    symbols = sorted(set(int(c) for c in sample))
    index = {c: k for k, c in enumerate(symbols)}
    trans, link, length = [{}], [-1], [0]
    last = 0
    for ch in sample:
        c = index[int(ch)]
        cur = len(length)
        trans.append({}), link.append(0), length.append(length[last] + 1)
        p = last
        while p != -1 and c not in trans[p]:
            trans[p][c] = cur
            p = link[p]
        if p != -1:
            q = trans[p][c]
            if length[p] + 1 == length[q]:
                link[cur] = q
            else:                                   # split q: a clone of length len(p)+1
                clone = len(length)
                trans.append(dict(trans[q])), link.append(link[q])
                length.append(length[p] + 1)
                while p != -1 and trans[p].get(c) == q:
                    trans[p][c] = clone
                    p = link[p]
                link[q] = link[cur] = clone
        last = cur
    table = np.full((len(length), max(1, len(symbols))), -1, np.int32)
    for s, t in enumerate(trans):
        for c, nxt in t.items():
            table[s, c] = nxt
    return table, np.array(link, np.int32), np.array(length, np.int32), symbols


def _file_position(text):
    """(file name, byte offset) of a 1-D contiguous view of a np.memmap, else None."""
    root = text
    while isinstance(getattr(root, "base", None), np.ndarray):
        root = root.base
    if not (isinstance(text, np.memmap) and isinstance(root, np.memmap)
            and getattr(root, "filename", None) and text.ndim == 1
            and text.flags.c_contiguous):
        return None
    # the root's data starts at its .offset in the file; a view starts that many bytes on
    delta = text.__array_interface__["data"][0] - root.__array_interface__["data"][0]
    return root.filename, root.offset + delta


def _blocks(text):
    """The text in blocks of BLOCK ids; from the file, not the map, if memory-mapped."""
    where = _file_position(text)
    if where is not None:
        with open(where[0], "rb") as f:
            for i in range(0, len(text), BLOCK):
                f.seek(where[1] + i * text.dtype.itemsize)
                yield np.fromfile(f, text.dtype, min(BLOCK, len(text) - i))
        return
    for i in range(0, len(text), BLOCK):
        yield np.ascontiguousarray(text[i:i + BLOCK])


def copied(sample, text, vocab_size):
    """Longest substring of `sample` (ids) found in `text` (ids, uint8/16/32 or any
    int array), in characters. 0 for an empty sample."""
    from charrnn._copylen import scan
    sample = np.asarray(sample).ravel()
    if len(sample) == 0 or len(text) == 0:
        return 0
    trans, link, length, symbols = automaton(sample)
    sym = np.full(vocab_size, -1, np.int32)
    sym[symbols] = np.arange(len(symbols), dtype=np.int32)
    state, matched, best = 0, 0, 0
    for block in _blocks(text):
        if block.dtype not in (np.uint8, np.uint16, np.uint32):
            block = block.astype(np.uint32)
        state, matched, best = scan(block, sym, trans, link, length, state, matched, best,
                                    len(sample))
        if best >= len(sample):
            break
    return best
