"""Data layer: decoding in chunks, vocabulary, id dtype, cache, split, batches, errors."""
import os

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from charrnn.data import corpus as data
from charrnn.data.batches import Batches, make_batches, split_train_val
from charrnn.data.corpus import bundled_corpus, load_corpus
from charrnn.data.text import decode_ids, encode_text, id_dtype
from charrnn.errors import CheckpointError, ConfigError, CorpusError


def write(tmp_path, content, name="corpus.txt"):
    path = tmp_path / name
    path.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
    return path


# ---- vocabulary, round trip, chunk boundaries -----------------------------------------

MIXED = "Hello, wörld! ½ € 日本語 😀🎉 naïve\ncafé 𝔘𝔫𝔦𝔠𝔬𝔡𝔢\n"


@pytest.mark.parametrize("chunk_size", [1, 2, 3, 5, 7, 1 << 20])
def test_vocab_and_round_trip_across_chunk_boundaries(tmp_path, chunk_size):
    # Tiny chunks cut every 2-, 3- and 4-byte sequence (the emoji) somewhere.
    corpus = load_corpus(write(tmp_path, MIXED), chunk_size=chunk_size)
    assert corpus.vocab == sorted(set(MIXED))
    assert corpus.encoding == "utf-8"
    assert corpus.ids.dtype == np.uint8 and len(corpus) == len(MIXED)
    assert decode_ids(corpus.ids, corpus.vocab) == MIXED
    assert corpus.vocab[corpus.ids[MIXED.index("😀")]] == "😀"


@settings(max_examples=40, deadline=None)
@given(text=st.text(min_size=2).filter(lambda t: len(set(t)) > 1 and not t.isspace()),
       chunk_size=st.integers(1, 9))
def test_round_trip_property(tmp_path_factory, text, chunk_size):
    path = write(tmp_path_factory.mktemp("c"), text.encode("utf-8", "surrogatepass"))
    if any(0xD800 <= ord(c) <= 0xDFFF for c in text):  # not valid UTF-8: must be refused
        with pytest.raises(CorpusError, match="not valid utf-8"):
            load_corpus(path, chunk_size=chunk_size)
        return
    corpus = load_corpus(path, chunk_size=chunk_size)
    assert corpus.vocab == sorted(set(text))
    assert decode_ids(corpus.ids, corpus.vocab) == text


def test_nul_bytes_are_ordinary_characters(tmp_path):
    corpus = load_corpus(write(tmp_path, "ab\x00cd\x00"))
    assert corpus.vocab == ["\x00", "a", "b", "c", "d"]
    assert decode_ids(corpus.ids, corpus.vocab) == "ab\x00cd\x00"


# ---- invalid UTF-8: byte offset of the first bad byte ----------------------------------

GOOD = "ab é € 😀 cd\n".encode("utf-8")  # 18 bytes of multi-byte text before the bad byte


@pytest.mark.parametrize("chunk_size", [1, 2, 3, 4, 5, 8, 100])
@pytest.mark.parametrize("bad, offset", [
    (GOOD + b"\xff rest", len(GOOD)),                     # invalid start byte
    (GOOD + b"\xe2\x82X rest", len(GOOD)),                # continuation byte missing
    (GOOD * 3 + b"\x80", 3 * len(GOOD)),                  # lone continuation byte
    (GOOD + b"\xe2\x82X" + b"\xf0\x9f\x98", len(GOOD)),     # bad, then cut at the end
])
def test_invalid_utf8_names_byte_offset(tmp_path, bad, offset, chunk_size):
    # chunk_size < offset puts the bad byte in a later chunk than the first.
    with pytest.raises(CorpusError) as exc:
        load_corpus(write(tmp_path, bad), chunk_size=chunk_size)
    msg = str(exc.value)
    assert f"at byte offset {offset:,} " in msg
    assert "not valid utf-8" in msg and "--encoding latin-1" in msg
    assert "--encoding bytes" in msg and "\n" not in msg


@pytest.mark.parametrize("chunk_size", [1, 2, 3, 5, 100])
@pytest.mark.parametrize("cut", [1, 2, 3])
def test_file_cut_inside_its_last_character_drops_it(tmp_path, cut, chunk_size):
    # `head -c` leaves the first bytes of a 4-byte character: a file people have, not an
    # invalid one. The incomplete character is dropped and counted, in every errors mode.
    raw = GOOD + "\U0001F600".encode("utf-8")[:cut]
    for errors in ("strict", "replace", "ignore"):
        corpus = load_corpus(write(tmp_path, raw), chunk_size=chunk_size, errors=errors)
        assert decode_ids(corpus.ids, corpus.vocab) == GOOD.decode("utf-8")
        assert corpus.dropped_tail == cut


def test_encoding_errors_replace_and_ignore(tmp_path):
    raw = b"ab\xffcd\xe2\x82Xef"
    p = write(tmp_path, raw)
    assert decode_ids(load_corpus(p, errors="replace").ids,
                      load_corpus(p, errors="replace").vocab) == "ab\ufffdcd\ufffdXef"
    c = load_corpus(p, errors="ignore")
    assert decode_ids(c.ids, c.vocab) == "abcdXef" and c.dropped_tail == 0
    with pytest.raises(CorpusError, match="--encoding-errors replace"):
        load_corpus(p)
    with pytest.raises(ConfigError, match="--encoding-errors must be one of"):
        load_corpus(p, errors="backslashreplace")


def test_cache_is_keyed_by_encoding_errors(tmp_path):
    p = write(tmp_path, b"ab\xffcd ab")
    replaced = load_corpus(p, cache_dir=tmp_path / "run", errors="replace")
    ignored = load_corpus(p, cache_dir=tmp_path / "run", errors="ignore")
    assert len(replaced) == 8 and len(ignored) == 7
    assert isinstance(ignored.ids, np.memmap)


def test_invalid_other_codec_offset(tmp_path):
    raw = "日本語のテキスト".encode("shift_jis") + b"\x81\x7f"
    with pytest.raises(CorpusError, match=r"not valid shift_jis: .* offset 16 .*--encoding"):
        load_corpus(write(tmp_path, raw), encoding="shift_jis", chunk_size=3)


# ---- other encodings --------------------------------------------------------------------

def test_latin1(tmp_path):
    raw = b"caf\xe9 na\xefve \xff\n"  # invalid as UTF-8, fine as Latin-1
    path = write(tmp_path, raw)
    with pytest.raises(CorpusError):
        load_corpus(path)
    corpus = load_corpus(path, encoding="latin-1", chunk_size=2)
    assert corpus.encoding == "iso8859-1"
    assert "é" in corpus.vocab and "ÿ" in corpus.vocab
    assert decode_ids(corpus.ids, corpus.vocab, corpus.encoding) == raw.decode("latin-1")


def test_bytes_encoding(tmp_path):
    raw = bytes([0xFF, 0x00, 0x61, 0x62, 0xC3, 0xA9, 0x61, 0xFF])
    corpus = load_corpus(write(tmp_path, raw), encoding="bytes", chunk_size=3)
    assert corpus.encoding == "bytes"
    assert corpus.vocab == [chr(b) for b in sorted(set(raw))]
    assert all(isinstance(c, str) and len(c) == 1 for c in corpus.vocab)
    assert corpus.ids.dtype == np.uint8
    assert decode_ids(corpus.ids, corpus.vocab, "bytes") == raw
    # A str prime for a byte-level model means its UTF-8 bytes.
    assert decode_ids(encode_text("é", corpus.vocab, "bytes"), corpus.vocab, "bytes") \
        == "é".encode()


def test_unknown_encoding():
    with pytest.raises(ConfigError, match="unknown encoding 'klingon'"):
        load_corpus("whatever.txt", encoding="klingon")
    with pytest.raises(ConfigError, match="not a text encoding"):
        load_corpus("whatever.txt", encoding="base64")


# ---- id dtype by vocabulary size -------------------------------------------------------

def test_id_dtype_boundaries():
    assert id_dtype(2) == np.uint8 and id_dtype(256) == np.uint8
    assert id_dtype(257) == np.uint16 and id_dtype(65536) == np.uint16
    assert id_dtype(65537) == np.uint32 and id_dtype(0x110000) == np.uint32


def distinct_chars(count, start=0x100):
    # Skip the surrogates, which UTF-8 cannot encode.
    codes = [c for c in range(start, start + count + 2048) if not 0xD800 <= c <= 0xDFFF]
    return "".join(map(chr, codes[:count]))


@pytest.mark.parametrize("count, dtype", [(300, np.uint16), (70000, np.uint32)])
def test_large_vocabularies(tmp_path, count, dtype):
    text = distinct_chars(count)
    text = text + text[::-1]  # every character twice, in two orders
    corpus = load_corpus(write(tmp_path, text), chunk_size=4099)
    assert len(corpus.vocab) == count and corpus.ids.dtype == dtype
    assert decode_ids(corpus.ids, corpus.vocab) == text


# ---- the cache in the run directory ---------------------------------------------------

def test_cache_is_written_reused_and_invalidated(tmp_path, monkeypatch):
    path = write(tmp_path, MIXED)
    run = tmp_path / "run"
    first = load_corpus(path, cache_dir=run, chunk_size=3)
    assert (run / "corpus.npy").exists() and (run / "corpus.json").exists()
    assert isinstance(first.ids, np.memmap)

    # A second load must not read the text file at all.
    real = data._code_points
    monkeypatch.setattr(data, "_code_points", lambda *a: pytest.fail("file was re-read"))
    again = load_corpus(path, cache_dir=run)
    assert again.vocab == first.vocab and again.encoding == "utf-8"
    np.testing.assert_array_equal(again.ids, first.ids)
    monkeypatch.setattr(data, "_code_points", real)

    # A changed file rebuilds it...
    path.write_text("xyzzy xyzzy", encoding="utf-8")
    os.utime(path, ns=(1, 1))  # a different mtime even on coarse-clock filesystems
    changed = load_corpus(path, cache_dir=run)
    assert decode_ids(changed.ids, changed.vocab) == "xyzzy xyzzy"
    # ...and so does another encoding.
    path.write_text(MIXED, encoding="utf-8")
    load_corpus(path, cache_dir=run)
    as_bytes = load_corpus(path, cache_dir=run, encoding="bytes")
    assert as_bytes.encoding == "bytes"
    assert decode_ids(as_bytes.ids, as_bytes.vocab, "bytes") == MIXED.encode()


def test_damaged_cache_is_rebuilt(tmp_path):
    path = write(tmp_path, MIXED)
    run = tmp_path / "run"
    load_corpus(path, cache_dir=run)
    (run / "corpus.npy").write_bytes(b"garbage")
    corpus = load_corpus(path, cache_dir=run)
    assert decode_ids(corpus.ids, corpus.vocab) == MIXED


# ---- corpus errors ----------------------------------------------------------------------

@pytest.mark.parametrize("content, match", [
    (b"", r"is empty \(0 bytes\)"),
    (b" \n\t\r\n  \n", "contains only whitespace"),
    (b"aaaaaaaaaaaa", r"single distinct character, 'a' \(U\+0061\), repeated 12 times"),
    ("\ufeff".encode("utf-8"), "contains no characters"),  # a BOM is not a character
])
def test_corpus_content_errors(tmp_path, content, match):
    with pytest.raises(CorpusError, match=match) as exc:
        load_corpus(write(tmp_path, content))
    assert "\n" not in str(exc.value)


def test_bom_only_with_utf8_sig_has_no_characters(tmp_path):
    with pytest.raises(CorpusError, match="contains no characters"):
        load_corpus(write(tmp_path, b"\xef\xbb\xbf"), encoding="utf-8-sig")


def test_whitespace_only_bytes(tmp_path):
    with pytest.raises(CorpusError, match="only whitespace"):
        load_corpus(write(tmp_path, b"\n \n\t"), encoding="bytes")


def test_missing_path_and_directory(tmp_path):
    with pytest.raises(CorpusError, match="corpus file not found: .*nope.txt; check the path"):
        load_corpus(tmp_path / "nope.txt")
    with pytest.raises(CorpusError, match="is a directory; pass a text file"):
        load_corpus(tmp_path)


def test_chunk_size_must_be_positive(tmp_path):
    with pytest.raises(ConfigError, match="chunk_size"):
        load_corpus(write(tmp_path, "ab"), chunk_size=0)


# ---- train / validation split -----------------------------------------------------------

def test_split_is_contiguous_tail():
    ids = np.arange(1000)
    train, val = split_train_val(ids, 0.1)
    np.testing.assert_array_equal(train, ids[:900])
    np.testing.assert_array_equal(val, ids[900:])
    train, val = split_train_val(ids, 0.0015)  # floor: one character
    assert len(val) == 1 and val[0] == 999 and len(train) == 999


@pytest.mark.parametrize("val_frac", [0, 1, -0.1, 1.5, float("nan"), "lots", None])
def test_val_frac_range(val_frac):
    with pytest.raises(ConfigError, match="--val-frac must be"):
        split_train_val(np.arange(100), val_frac)


# ---- batches ------------------------------------------------------------------------

def test_windows_shape_shift_and_streams():
    # ids[i] == i, so every value says where it came from.
    N, B, T = 103, 4, 5
    batches = Batches(np.arange(N, dtype=np.uint32), B, T)
    L = N // B  # 25; the last 3 ids are dropped
    assert len(batches) == (L - 1) // T == 4
    for k, (x, y) in enumerate(batches):
        assert x.shape == y.shape == (T, B)
        assert x.dtype == y.dtype == np.int64
        assert x.flags.c_contiguous and y.flags.c_contiguous
        for b in range(B):
            # Stream b is the contiguous slice [b*L, (b+1)*L); window k is its k-th piece.
            np.testing.assert_array_equal(x[:, b], b * L + k * T + np.arange(T))
        np.testing.assert_array_equal(y, x + 1)
        assert not np.shares_memory(x, y)
    assert (x.max() < N - N % B) and (y.max() <= B * L - 1)


def test_consecutive_windows_continue_each_stream():
    rng = np.random.default_rng(0)
    ids = rng.integers(0, 50, size=1000).astype(np.uint8)
    batches = Batches(ids, batch_size=7, seq_len=9)
    L = len(ids) // 7
    streams = ids[:7 * L].reshape(7, L)
    # Concatenating the windows of an epoch gives back each stream's prefix, in order,
    # so a hidden state carried from window k is the right start for window k+1.
    xs = np.concatenate([x for x, _ in batches])  # (len * T, B)
    np.testing.assert_array_equal(xs.T, streams[:, :len(batches) * 9])
    for k in range(len(batches) - 1):
        np.testing.assert_array_equal(batches.window(k + 1)[0][0], batches.window(k)[1][-1])


def test_window_out_of_range():
    batches = Batches(np.arange(50), 2, 4)
    with pytest.raises(IndexError, match="out of range"):
        batches.window(len(batches))
    with pytest.raises(IndexError):
        batches.window(-1)


def test_cursor_rolls_over_epochs():
    batches = Batches(np.arange(40), 2, 4)  # L = 20 -> 4 windows
    seen = [(b.epoch, b.index) for b in (batches.next() for _ in range(9))]
    assert seen == [(0, 0), (0, 1), (0, 2), (0, 3), (1, 0), (1, 1), (1, 2), (1, 3), (2, 0)]
    np.testing.assert_array_equal(batches.next().x, batches.window(1)[0])


def test_cursor_resume_gives_identical_batches():
    ids = np.random.default_rng(1).integers(0, 60, size=5000).astype(np.uint8)
    run = Batches(ids, 8, 16)
    for _ in range(len(run) + 5):  # into the second epoch
        run.next()
    state = run.state_dict()
    expected = [run.next() for _ in range(len(run) + 3)]

    resumed = Batches(ids, 8, 16)
    resumed.load_state_dict(dict(state))
    got = [resumed.next() for _ in range(len(expected))]
    for a, b in zip(expected, got):
        assert (a.epoch, a.index) == (b.epoch, b.index)
        np.testing.assert_array_equal(a.x, b.x)
        np.testing.assert_array_equal(a.y, b.y)


def test_cursor_refuses_other_geometry_or_damage():
    state = Batches(np.arange(500), 4, 10).state_dict()
    with pytest.raises(CheckpointError, match="batch_size=4, seq_len=10 .* batch_size=5"):
        Batches(np.arange(500), 5, 10).load_state_dict(state)
    with pytest.raises(CheckpointError, match="out of range"):
        Batches(np.arange(500), 4, 10).load_state_dict(dict(state, index=99))
    with pytest.raises(CheckpointError, match="damaged"):
        Batches(np.arange(500), 4, 10).load_state_dict({"epoch": 1})


@pytest.mark.parametrize("bad", [0, -3, 1.5, True, "8", None])
def test_batch_size_and_seq_len_must_be_positive_ints(bad):
    with pytest.raises(ConfigError, match="--batch-size must be a positive integer"):
        Batches(np.arange(100), bad, 4)
    with pytest.raises(ConfigError, match="--seq-len must be a positive integer"):
        Batches(np.arange(100), 2, bad)


def test_numpy_ints_are_accepted():
    assert len(Batches(np.arange(100), np.int64(2), np.int32(4))) == 12


def test_make_batches_splits_and_batches():
    ids = np.arange(10_000)
    train, val = make_batches(ids, batch_size=4, seq_len=10, val_frac=0.1)
    assert train.streams.size == 9000 and val.streams.size == 1000
    assert val.window(0)[0][0, 0] == 9000  # validation starts where training ends
    assert train.streams.max() < 9000


def test_corpus_too_short_for_batch():
    # 900 training characters; 50 streams of 101 need 5,050.
    with pytest.raises(CorpusError) as exc:
        make_batches(np.arange(1000), batch_size=50, seq_len=100, val_frac=0.1)
    msg = str(exc.value)
    assert "has 900 characters" in msg and "of the corpus's 1,000 characters" in msg
    assert "needs at least 5,050" in msg
    assert "smaller --batch-size or --seq-len" in msg and "\n" not in msg


def test_validation_part_too_small():
    # Training part (9,900) is fine; the validation part (100) is not (needs 4 x 65 = 260).
    with pytest.raises(CorpusError) as exc:
        make_batches(np.arange(10_000), batch_size=4, seq_len=64, val_frac=0.01)
    msg = str(exc.value)
    assert "validation part" in msg and "has 100 characters" in msg and "needs 260" in msg
    assert "raise --val-frac to at least 0.03" in msg
    # ...and the suggestion works.
    make_batches(np.arange(10_000), batch_size=4, seq_len=64, val_frac=0.03)


def test_validation_part_too_small_without_room_to_grow():
    # 600 characters: 5 x 101 = 505 each for train and val cannot both fit.
    with pytest.raises(CorpusError, match="validation part.*smaller --batch-size or --seq-"):
        make_batches(np.arange(600), batch_size=5, seq_len=100, val_frac=0.1)


# ---- priming / sampling helpers ---------------------------------------------------------

def test_encode_decode_text():
    vocab = sorted(set("hello world"))
    ids = encode_text("hello", vocab)
    assert ids.dtype == np.int64
    assert [vocab[i] for i in ids] == list("hello")
    assert decode_ids(ids, vocab) == "hello"
    assert decode_ids(np.array([], dtype=int), vocab) == ""


def test_encode_text_lists_unknown_characters():
    vocab = sorted(set("hello world"))
    with pytest.raises(ConfigError) as exc:
        encode_text("héllo\x00wörld", vocab, what="the --prime text")
    msg = str(exc.value)
    assert msg.startswith("the --prime text contains characters the model never saw")
    assert "'\\x00' (U+0000), 'é' (U+00E9), 'ö' (U+00F6)" in msg


def test_encode_text_truncates_long_lists():
    with pytest.raises(ConfigError, match=r"U\+006C\) and 14 more; remove"):
        encode_text("abcdefghijklmnopqrstuvwxyz", ["a", "b"])


# ---- the bundled corpus -----------------------------------------------------------------

def test_bundled_corpus():
    path = bundled_corpus()
    assert path.name == "tinyshakespeare.txt" and path.is_file()
    with pytest.raises(CorpusError, match="missing from this installation"):
        bundled_corpus("no-such-corpus.txt")


# ---- text as people have it (issue 27, item 17) -------------------------------------------

def test_a_utf8_byte_order_mark_is_not_a_character(tmp_path):
    from charrnn.data.corpus import load_corpus
    p = tmp_path / "bom.txt"
    p.write_bytes(b"\xef\xbb\xbfhello world\n")
    for chunk_size in (1, 2, 5, 1 << 20):
        c = load_corpus(p, chunk_size=chunk_size)
        assert "\ufeff" not in c.vocab and len(c) == len("hello world\n")
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"\xef\xbb\xbfab\xffcd")
    with pytest.raises(CorpusError, match="byte offset 5 "):
        load_corpus(bad)


def test_utf16_with_a_bom_is_named_and_reads_with_its_encoding(tmp_path):
    from charrnn.data.corpus import load_corpus
    p = tmp_path / "u16.txt"
    p.write_bytes("hello world\n".encode("utf-16"))
    with pytest.raises(CorpusError, match="UTF-16 .*--encoding utf-16"):
        load_corpus(p)
    assert "".join(load_corpus(p, encoding="utf-16").vocab) == "".join(sorted(set("hello world\n")))


def test_a_gzip_file_is_named_as_such(tmp_path):
    import gzip
    from charrnn.data.corpus import load_corpus
    p = tmp_path / "text.txt.gz"
    p.write_bytes(gzip.compress(b"hello world\n" * 100))
    for errors in ("strict", "replace"):
        with pytest.raises(CorpusError, match="gzip-compressed"):
            load_corpus(p, errors=errors)


# ---- several files: folders, lists, patterns (charrnn.data.several) ---------------------

def notes(tmp_path):
    """A folder: files in subfolders, a hidden file and folder, an empty file; b.txt
    does not end with a newline, so a newline joins it to the next file."""
    root = tmp_path / "notes"
    for name, text in [("b.txt", "bee"), ("a.txt", "ant\n"), ("sub/c.txt", "cat\n"),
                       ("sub/a2.txt", "ape"), (".hidden", "HIDDEN\n"),
                       (".git/x.txt", "GIT\n"), ("empty.txt", "")]:
        p = root / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text, encoding="utf-8")
    return root


def test_a_folder_is_its_files_in_sorted_path_order_joined_by_newlines(tmp_path):
    from charrnn.data.several import expand, load_files
    root = notes(tmp_path)
    fs = expand(root)
    assert [p.relative_to(root).as_posix() for p in fs.files] == \
        ["a.txt", "b.txt", "sub/a2.txt", "sub/c.txt"]          # hidden and empty left out
    assert fs.notes == ["1 empty file left out"] and fs.name == "notes/ (4 files)"
    corpus = load_files(fs)
    # "ant\n" ends with a newline: nothing added; "bee" does not: one newline; the last
    # file ("cat\n") is followed by nothing
    assert decode_ids(corpus.ids, corpus.vocab) == "ant\nbee\nape\ncat\n"
    texts = [decode_ids(corpus.ids[a:b], corpus.vocab) for _, a, b in corpus.parts]
    assert texts == ["ant\n", "bee", "ape", "cat\n"]          # the joining newline: in none
    assert [n for n, _, _ in corpus.parts] == [str(p) for p in fs.files]


def test_a_list_of_files_and_a_pattern_the_shell_left_alone(tmp_path, monkeypatch):
    from charrnn.data import sources
    from charrnn.data.several import FileSet
    root = notes(tmp_path)
    monkeypatch.chdir(tmp_path)
    fs = sources.resolve(["notes/sub/c.txt", "notes/b.txt", "notes/sub/c.txt"])
    assert isinstance(fs, FileSet)
    assert [p.as_posix() for p in fs.files] == ["notes/sub/c.txt", "notes/b.txt"]  # each once
    assert [p.name for p in sources.resolve("notes/**/*.txt").files] == \
        ["a.txt", "b.txt", "a2.txt", "c.txt"]
    assert sources.resolve(["notes/a.txt"]) == "notes/a.txt"   # one file: as it always was
    assert sources.resolve(root / "a.txt") == str(root / "a.txt")
    for bad, match in [("notes/*.zip", "no file matches notes/\\*.zip"),
                       (["notes/a.txt", "gone.txt"], "no such file or folder: gone.txt"),
                       (["-", "notes/a.txt"], "standard input.*only alone")]:
        with pytest.raises(CorpusError, match=match) as e:
            sources.resolve(bad)
        assert "\n" not in str(e.value)
    (tmp_path / "void").mkdir()
    with pytest.raises(CorpusError, match="holds no files"):
        sources.resolve("void")


def test_the_cache_of_several_files_sees_a_change_in_any_of_them(tmp_path, monkeypatch):
    from charrnn.data import several
    root = notes(tmp_path)
    run = tmp_path / "run"
    fs = several.expand(root)
    first = several.load_files(fs, cache_dir=run)
    assert isinstance(first.ids, np.memmap)
    meta = __import__("json").loads((run / "corpus.json").read_text())
    assert [f["path"] for f in meta["files"]] == fs.resolved()
    assert all(len(f["sha256"]) == 64 for f in meta["files"])

    real = data._code_points
    monkeypatch.setattr(data, "_code_points", lambda *a: pytest.fail("a file was re-read"))
    again = several.load_files(fs, cache_dir=run)
    np.testing.assert_array_equal(again.ids, first.ids)
    assert again.parts == first.parts
    monkeypatch.setattr(data, "_code_points", real)

    (root / "sub" / "a2.txt").write_text("apE", encoding="utf-8")   # the third of four
    os.utime(root / "sub" / "a2.txt", ns=(1, 1))
    changed = several.load_files(fs, cache_dir=run)
    assert decode_ids(changed.ids, changed.vocab) == "ant\nbee\napE\ncat\n"


def test_an_unreadable_file_in_a_folder_is_named_before_training(tmp_path):
    """chmod 000: refused by name for a user; root reads it anyway (then it trains)."""
    import charrnn
    root = notes(tmp_path)
    bad = root / "sub" / "c.txt"
    bad.chmod(0)
    try:
        readable = os.access(bad, os.R_OK)
        seen = []
        run = tmp_path / "run"
        if readable:   # root: permission bits do not stop it
            charrnn.train(root, out=run, quiet=True, max_steps=1, hidden=8, layers=1,
                          embed=4, seq_len=4, batch_size=1, max_minutes=0)
        else:
            with pytest.raises(CorpusError, match=f"cannot read the corpus .*{bad.name}: "
                                                  "Permission denied") as e:
                charrnn.train(root, out=run, quiet=True, progress=seen.append)
            assert "\n" not in str(e.value) and seen == [] and not run.exists()
    finally:
        bad.chmod(0o644)


@pytest.mark.parametrize("errors", ["strict", "replace"])
def test_a_latin1_or_binary_file_among_utf8_ones(tmp_path, errors):
    """Refused by name and offset whoever runs it (root too), before any training step;
    --encoding-errors replace trains on it."""
    import charrnn
    root = notes(tmp_path)
    (root / "sub" / "latin.txt").write_bytes("café\n".encode("latin-1"))
    (root / "z.bin").write_bytes(bytes(range(120, 256)) * 3)
    run, seen = tmp_path / "run", []
    opts = dict(out=run, quiet=True, max_steps=2, hidden=8, layers=1, embed=4, seq_len=4,
                batch_size=1, max_minutes=0, encoding_errors=errors, progress=seen.append)
    if errors == "strict":
        with pytest.raises(CorpusError, match=r"notes/sub/latin.txt is not valid utf-8: "
                                              r"byte 0xe9 at byte offset 3") as e:
            charrnn.train(root, **opts)
        assert "\n" not in str(e.value) and seen == [] and not run.exists()
        (root / "sub" / "latin.txt").unlink()
        with pytest.raises(CorpusError, match=r"notes/z.bin is not valid utf-8"):
            charrnn.train(root, **opts)
        assert seen == [] and not run.exists()
    else:
        charrnn.train(root, **opts)
        assert len(seen) == 2 and "\ufffd" in charrnn.load(run).vocab


def test_several_files_resume_and_show_in_runs(tmp_path):
    import charrnn
    from charrnn.inspect.runs import format_table, read_run
    root = notes(tmp_path)
    opts = dict(quiet=True, hidden=8, layers=1, embed=4, seq_len=4, batch_size=1,
                max_minutes=0, val_frac=0.2)
    charrnn.train(root, out=tmp_path / "r", max_steps=3, **opts)
    s = charrnn.train(out=tmp_path / "r", resume=True, quiet=True, max_steps=5)  # no files
    assert s["steps"] == 5
    s = charrnn.train(root, out=tmp_path / "r", resume=True, quiet=True, max_steps=6)
    assert s["steps"] == 6
    run = read_run(tmp_path / "r")
    assert run.corpus == str(root.resolve()) + os.sep and run.corpus_name == "notes/ (4 files)"
    assert "notes/ (4 files)" in format_table([run])
    (root / "new.txt").write_text("new\n")
    from charrnn.errors import RunDirError
    with pytest.raises(RunDirError, match="was trained on .*notes/, not .*notes/"):
        charrnn.train(root, out=tmp_path / "r", resume=True, quiet=True, max_steps=7)
    (root / "new.txt").unlink()
    (root / "a.txt").write_text("ANT\n")
    with pytest.raises(CorpusError, match=r"the corpus .*a.txt \(of .*notes/\) changed"):
        charrnn.train(out=tmp_path / "r", resume=True, quiet=True, max_steps=7)
