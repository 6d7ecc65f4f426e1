"""Characters <-> ids: encodings, the id dtype, and text through a model's vocabulary.

    encode_text("ROMEO:", vocab)   -> (len,) int64 ids   (ConfigError naming unknown chars)
    decode_ids(ids, vocab)         -> str (bytes for a byte-level model)
    remap_ids(corpus, vocab)       -> (a corpus's ids in another vocabulary (a model's),
                                       characters it lacks, skipped or an error)

A vocabulary is a list of one-character strings; id i is vocab[i]. A byte-level model
(encoding "bytes") reads byte b as the character chr(b).
"""
import codecs
from typing import Union

import numpy as np

from charrnn.errors import ConfigError, CorpusError

BYTES = "bytes"               # the encoding name of byte-level models


def id_dtype(vocab_size: int) -> np.dtype:
    """Smallest unsigned integer type that holds ids 0..vocab_size-1."""
    for dtype in (np.uint8, np.uint16, np.uint32):
        if vocab_size <= np.iinfo(dtype).max + 1:
            return np.dtype(dtype)
    raise CorpusError(f"vocabulary of {vocab_size:,} characters is too large")  # > 2**32


def normalize_encoding(encoding: str) -> str:
    """Canonical codec name ("latin-1" -> "iso8859-1"), or "bytes"; ConfigError if unknown."""
    if encoding == BYTES:
        return BYTES
    try:
        info = codecs.lookup(encoding)
    except (LookupError, TypeError):
        raise ConfigError(f"unknown encoding {encoding!r}; use utf-8, latin-1, bytes or "
                          "another Python codec name") from None
    if not getattr(info, "_is_text_encoding", True):  # e.g. "base64", "zlib": bytes->bytes
        raise ConfigError(f"{encoding!r} is not a text encoding; use utf-8, latin-1 or bytes")
    return info.name


def show_chars(chars) -> str:
    """'a' (U+0061), '\\x00' (U+0000): readable even for control characters."""
    return ", ".join(f"{c!r} (U+{ord(c):04X})" for c in chars)


def encode_text(text: Union[str, bytes], vocab, encoding: str = "utf-8",
                what: str = "text") -> np.ndarray:
    """Ids of text, (len,) int64. For byte-level models a str is taken as its UTF-8 bytes.

    what names the text in the error message, e.g. "the --prime text".
    """
    if normalize_encoding(encoding) == BYTES:
        if isinstance(text, str):
            text = text.encode("utf-8")
        text = bytes(text).decode("latin-1")  # byte b -> chr(b), as in the vocabulary
    elif isinstance(text, bytes):
        text = text.decode(encoding)
    index = {c: i for i, c in enumerate(vocab)}
    missing = sorted(set(text) - index.keys())
    if missing:
        shown = show_chars(missing[:10]) + (f" and {len(missing) - 10} more" if len(missing) > 10
                                       else "")
        raise ConfigError(f"{what} contains characters the model never saw in training: "
                          f"{shown}; remove or replace them")
    return np.array([index[c] for c in text], dtype=np.int64)


def remap_ids(corpus, vocab, unknown="error"):
    """(corpus.ids re-expressed in another vocabulary (a model's) as int32, how many
    characters vocab lacks). unknown="error": CorpusError listing the characters of the
    corpus that vocab lacks; "skip": those characters are left out."""
    index = {c: i for i, c in enumerate(vocab)}
    missing = [c for c in corpus.vocab if c not in index]
    if missing and unknown != "skip":
        shown = show_chars(missing[:10]) + (f" and {len(missing) - 10} more" if len(missing) > 10
                                       else "")
        raise CorpusError(f"{corpus.path} contains characters the model never saw in "
                          f"training: {shown}; pass --unknown skip to score the text "
                          "without them")
    table = np.array([index.get(c, -1) for c in corpus.vocab], dtype=np.int32)
    ids = table[corpus.ids]
    if not missing:
        return ids, 0
    kept = ids[ids >= 0]
    return kept, len(ids) - len(kept)


def decode_ids(ids, vocab, encoding: str = "utf-8") -> Union[str, bytes]:
    """Text of ids: a str, or bytes for a byte-level model (encoding "bytes")."""
    text = "".join(vocab[i] for i in np.asarray(ids, dtype=np.int64).ravel())
    return text.encode("latin-1") if normalize_encoding(encoding) == BYTES else text
