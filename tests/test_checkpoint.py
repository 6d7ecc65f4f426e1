"""charrnn.io.checkpoint: PyTorch-compatible names, exact round trips, and a loader
that turns any bytes into either a model or a CheckpointError."""
import functools
import json
import os
import struct
import tempfile
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import safetensors.numpy
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from charrnn.errors import CheckpointError
from charrnn.io import checkpoint as ck
from charrnn.nn import shapes
from conftest import make_config, make_params, vocab_of, save_small, write_raw, assert_same_model, rejects


# ---------------------------------------------------------------- names and round trip

def test_expected_shapes_literal_pytorch_names():
    # nn.Embedding(7, 3), nn.LSTM(3, 5, num_layers=2), nn.Linear(5, 7)
    assert shapes.expected_shapes(make_config()) == {
        "encoder.weight": (7, 3),
        "rnn.weight_ih_l0": (20, 3), "rnn.weight_hh_l0": (20, 5),
        "rnn.bias_ih_l0": (20,), "rnn.bias_hh_l0": (20,),
        "rnn.weight_ih_l1": (20, 5), "rnn.weight_hh_l1": (20, 5),
        "rnn.bias_ih_l1": (20,), "rnn.bias_hh_l1": (20,),
        "decoder.weight": (7, 5), "decoder.bias": (7,),
    }


@pytest.mark.parametrize("cell,G", [("lstm", 4), ("gru", 3), ("rnn", 1)])
@pytest.mark.parametrize("layers", [1, 2])
def test_saved_file_has_pytorch_names_and_shapes(tmp_path, cell, G, layers):
    config = make_config(cell=cell, layers=layers, embed=3, hidden=5, vocab_size=7)
    torch_state_dict = {"encoder.weight": (7, 3), "decoder.weight": (7, 5),
                        "decoder.bias": (7,)}
    for k in range(layers):   # torch.nn.RNNBase parameter names and shapes
        torch_state_dict.update({
            f"rnn.weight_ih_l{k}": (G * 5, 3 if k == 0 else 5),
            f"rnn.weight_hh_l{k}": (G * 5, 5),
            f"rnn.bias_ih_l{k}": (G * 5,), f"rnn.bias_hh_l{k}": (G * 5,)})
    assert shapes.expected_shapes(config) == torch_state_dict
    path = tmp_path / "model.safetensors"
    ck.save_model(path, make_params(config), config, vocab_of(7))
    plain = safetensors.numpy.load_file(str(path))   # what safetensors.torch reads
    assert {n: a.shape for n, a in plain.items()} == torch_state_dict
    assert all(a.dtype == np.float32 for a in plain.values())


def test_round_trip_is_exact(tmp_path):
    path = tmp_path / "model.safetensors"
    params, config, vocab, info = save_small(path)
    loaded = ck.load_model(path)
    assert_same_model(loaded, params, config, vocab, info)
    p, c, v, i = loaded   # a plain tuple too
    assert c == config and i == info


def test_round_trip_without_info_and_numpy_scalars_in_info(tmp_path):
    config = make_config(cell="gru", layers=1)
    params = make_params(config)
    ck.save_model(tmp_path / "a.safetensors", params, config, vocab_of(7))
    assert ck.load_model(tmp_path / "a.safetensors").info is None
    ck.save_model(tmp_path / "b.safetensors", params, config, vocab_of(7),
                  {"val_loss": np.float32(0.5), "step": np.int64(3)})
    info = ck.load_model(tmp_path / "b.safetensors").info
    assert info == {"val_loss": 0.5, "step": 3}


def test_float64_params_are_stored_float32_unless_asked(tmp_path):
    config = make_config(cell="rnn")
    params = make_params(config, dtype=np.float64)
    path = tmp_path / "m.safetensors"
    ck.save_model(path, params, config, vocab_of(7))
    loaded = ck.load_model(path)
    for name, value in params.items():
        np.testing.assert_array_equal(loaded.params[name], value.astype(np.float32))
    ck.save_model(path, params, config, vocab_of(7), dtype=np.float64)
    exact = ck.load_model(path, dtype=np.float64)
    for name, value in params.items():
        np.testing.assert_array_equal(exact.params[name], value)


def test_save_rejects_bad_arguments_and_writes_nothing(tmp_path):
    config = make_config()
    params = make_params(config)
    path = tmp_path / "m.safetensors"
    bad_nan = dict(params, **{"decoder.bias": np.full(7, np.nan, np.float32)})
    bad_shape = dict(params, **{"decoder.bias": np.zeros(8, np.float32)})
    missing = {k: v for k, v in params.items() if k != "decoder.bias"}
    for args in [(params, dict(config, cell="transformer"), vocab_of(7)),
                 (params, dict(config, hidden=0), vocab_of(7)),
                 (params, config, vocab_of(6)),
                 (params, config, ["a"] * 7),
                 (params, config, 7),
                 (params, dict(config, cell={"lstm": 1}), vocab_of(7)),
                 (missing, config, vocab_of(7)),
                 (dict(params, extra=np.zeros(1)), config, vocab_of(7)),
                 (bad_shape, config, vocab_of(7)),
                 (bad_nan, config, vocab_of(7)),
                 (dict(params, **{"decoder.bias": np.zeros(7, np.int64)}), config,
                  vocab_of(7))]:
        with pytest.raises(CheckpointError, match="cannot save"):
            ck.save_model(path, *args)
    with pytest.raises(CheckpointError, match="info"):
        ck.save_model(path, params, config, vocab_of(7), {"x": object()})
    with pytest.raises(CheckpointError, match="NaN or Inf"):   # overflows float32
        ck.save_model(path, dict(params, **{"decoder.bias": np.full(7, 1e300)}),
                      config, vocab_of(7))
    assert os.listdir(tmp_path) == []


def test_safetensors_file_from_another_program(tmp_path):
    path = tmp_path / "other.safetensors"
    safetensors.numpy.save_file({"w": np.zeros(3, np.float32)}, str(path))
    assert "another program" in rejects(path)
    safetensors.numpy.save_file({"w": np.zeros(3, np.float32)}, str(path),
                                metadata={"format": "pt"})
    assert "format 'pt'" in rejects(path)


@pytest.mark.parametrize("version,match", [
    ("2", r"newer charrnn \(format version 2\); this charrnn reads format version 1"),
    ("0", r"older charrnn \(format version 0\)"),
    ("1.0", "bad format_version '1.0'"), (None, "lacks format_version"),
])
def test_format_version(tmp_path, version, match):
    config = make_config()
    path = tmp_path / "m.safetensors"
    write_raw(path, make_params(config), config, vocab_of(7), format_version=version)
    rejects(path, match)


def test_model_and_state_files_are_told_apart(tmp_path):
    save_small(tmp_path / "model.safetensors")
    ck.save_state(tmp_path / "state.safetensors", {"x": np.zeros(2)}, {"step": 1})
    rejects(tmp_path / "state.safetensors", "training state, not a model")
    with pytest.raises(CheckpointError, match="model checkpoint, not a training state"):
        ck.load_state(tmp_path / "model.safetensors")


def test_missing_extra_misshapen_and_mistyped_tensors(tmp_path):
    config = make_config()
    params = make_params(config)
    path = tmp_path / "m.safetensors"
    ok = lambda tensors: write_raw(path, tensors, config, vocab_of(7))  # noqa: E731

    ok({k: v for k, v in params.items() if k != "decoder.bias"})
    rejects(path, "layers")   # the tensor count no longer fits the config
    ok({k: v for k, v in params.items() if k != "decoder.bias"}
       | {"decoder.bais": params["decoder.bias"]})
    rejects(path, "missing tensors 'decoder.bias'")
    ok(dict(params, **{"decoder.weight": params["decoder.weight"].T.copy()}))
    rejects(path, r"decoder.weight has shape \[5, 7\]")
    ok(dict(params, **{"decoder.bias": params["decoder.bias"].astype(np.float16)}))
    rejects(path, "dtype F16")
    ok(dict(params, **{"decoder.bias": np.arange(7, dtype=np.int32)}))
    rejects(path, "dtype I32")
    ok({k: v.astype(np.float64) for k, v in params.items()})   # F64 is fine
    assert ck.load_model(path).params["decoder.bias"].dtype == np.float32
    for bad in [np.nan, np.inf, -np.inf]:
        w = params["rnn.weight_hh_l1"].copy()
        w[1, 2] = bad
        ok(dict(params, **{"rnn.weight_hh_l1": w}))
        rejects(path, "rnn.weight_hh_l1 has NaN or Inf")


def test_extra_tensor_rejected(tmp_path):
    config = make_config(layers=1)
    params = make_params(config)
    del params["rnn.bias_hh_l0"]
    path = tmp_path / "m.safetensors"
    write_raw(path, dict(params, junk=np.zeros(1, np.float32)), config, vocab_of(7))
    rejects(path, "missing tensors 'rnn.bias_hh_l0'")
    params = make_params(config)
    write_raw(path, dict(params, junk=np.zeros(1, np.float32)), config, vocab_of(7))
    rejects(path, "holds 8 tensors")


@pytest.mark.parametrize("change,match", [
    ({"cell": "transformer"}, "config cell is 'transformer'"),
    ({"hidden": 0}, "config hidden is 0"),
    ({"embed": -3}, "config embed is -3"),
    ({"layers": "2"}, "config layers is '2'"),
    ({"vocab_size": 7.0}, "config vocab_size is 7.0"),
    ({"hidden": True}, "config hidden is True"),
    ({"layers": 10**12}, "tensors"),
    ({"dropout": 1.5}, "dropout"),
    ({"cell": None}, "config cell is None"),
    ({"cell": ["lstm"]}, r"config cell is \['lstm'\]"),
])
def test_bad_config_values(tmp_path, change, match):
    config = make_config()
    path = tmp_path / "m.safetensors"
    write_raw(path, make_params(config), dict(config, **change), vocab_of(7))
    rejects(path, match)


def test_bad_config_json(tmp_path):
    config = make_config()
    params = make_params(config)
    path = tmp_path / "m.safetensors"
    write_raw(path, params, None, vocab_of(7))
    rejects(path, "metadata lacks 'config'")
    write_raw(path, params, config={}, vocab=vocab_of(7))
    rejects(path, "config lacks cell, hidden, layers, embed, vocab_size")
    safetensors.numpy.save_file(params, str(path), metadata={
        "format": "charrnn", "format_version": "1", "config": "{oops",
        "vocab": json.dumps(vocab_of(7))})
    rejects(path, "'config' is not valid JSON")
    write_raw(path, params, [1, 2], vocab_of(7))
    rejects(path, "config must be a JSON object")
    write_raw(path, params, {k: v for k, v in config.items() if k != "embed"},
              vocab_of(7))
    rejects(path, "config lacks embed")


@pytest.mark.parametrize("vocab,match", [
    ("abcdefg", "list of one-character"),
    (["ab", "c", "d", "e", "f", "g", "h"], "list of one-character"),
    (["a", "b", "c", "d", "e", "f", 7], "list of one-character"),
    (["a", "b", "c", "d", "e", "f", "a"], "repeated"),
    (vocab_of(6), "6 characters but config vocab_size is 7"),
    (None, "lacks 'vocab'"),
])
def test_bad_vocab(tmp_path, vocab, match):
    config = make_config()
    path = tmp_path / "m.safetensors"
    write_raw(path, make_params(config), config, vocab)
    rejects(path, match)


def test_vocab_size_must_match_encoder_rows(tmp_path):
    config = make_config()
    path = tmp_path / "m.safetensors"
    write_raw(path, make_params(config), dict(config, vocab_size=8), vocab_of(8))
    rejects(path, r"encoder.weight has shape \[7, 3\]")


def test_unknown_metadata_rejected(tmp_path):
    config = make_config()
    path = tmp_path / "m.safetensors"
    write_raw(path, make_params(config), config, vocab_of(7), sha25x="0" * 64)
    rejects(path, "unexpected metadata 'sha25x'")


def test_info_must_be_an_object(tmp_path):
    config = make_config()
    path = tmp_path / "m.safetensors"
    write_raw(path, make_params(config), config, vocab_of(7), info=[1])
    rejects(path, "info is not a JSON object")


def test_checksum_catches_silent_corruption(tmp_path):
    path = tmp_path / "model.safetensors"
    save_small(path)
    data = bytearray(path.read_bytes())
    data[-3] ^= 0x01   # a low mantissa bit of decoder.bias: still a finite float
    path.write_bytes(bytes(data))
    rejects(path, "checksum mismatch")
    save_small(path)
    data = path.read_bytes()
    assert data.count(b'\\"Z\\"') == 1
    path.write_bytes(data.replace(b'\\"Z\\"', b'\\"Y\\"'))   # still a valid vocab
    rejects(path, "checksum mismatch")


# ---------------------------------------------------------------- fuzzing

def _mutate(data, mutations):
    data = bytearray(data)
    for kind, position, byte in mutations:
        i = position % (len(data) + 1)
        if kind == "flip" and i < len(data):
            data[i] ^= byte
        elif kind == "insert":
            data[i:i] = bytes([byte])
        elif kind == "delete" and i < len(data):
            del data[i]
        elif kind == "truncate":
            del data[i:]
    return bytes(data)


_MUTATION = st.tuples(st.sampled_from(["flip", "insert", "delete", "truncate"]),
                      st.one_of(st.integers(0, 600), st.integers(0, 10**6)),
                      st.integers(1, 255))
_FUZZ = settings(max_examples=250, deadline=None,
                 suppress_health_check=[HealthCheck.function_scoped_fixture])
_STATE_ARRAYS = {"adam.m.encoder.weight": np.linspace(-1, 1, 12, dtype=np.float32),
                 "hidden.h": np.ones((2, 3)), "cursor": np.arange(4, dtype=np.int64)}
_STATE_META = {"step": 7, "lr": 0.002}


@functools.lru_cache(maxsize=None)
def _pristine(kind):
    """The bytes of one valid file, made once: safetensors orders the metadata
    differently on every save, and hypothesis needs the same input on replay."""
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "file.safetensors"
        if kind == "model":
            original = save_small(path)
        else:
            ck.save_state(path, _STATE_ARRAYS, _STATE_META)
            original = None
        return path.read_bytes(), original


@_FUZZ
@given(mutations=st.lists(_MUTATION, min_size=1, max_size=3))
def test_mutated_model_loads_unchanged_or_raises_checkpoint_error(tmp_path, mutations):
    path = tmp_path / "model.safetensors"
    data, original = _pristine("model")
    path.write_bytes(_mutate(data, mutations))
    try:
        loaded = ck.load_model(path)
    except CheckpointError:
        return
    assert_same_model(loaded, *original)   # e.g. header padding changed: no harm done


@_FUZZ
@given(mutations=st.lists(_MUTATION, min_size=1, max_size=3))
def test_mutated_state_loads_unchanged_or_raises_checkpoint_error(tmp_path, mutations):
    path = tmp_path / "state.safetensors"
    path.write_bytes(_mutate(_pristine("state")[0], mutations))
    try:
        state = ck.load_state(path)
    except CheckpointError:
        return
    assert state.meta == _STATE_META and state.arrays.keys() == _STATE_ARRAYS.keys()
    for name, value in _STATE_ARRAYS.items():
        np.testing.assert_array_equal(state.arrays[name], value)


# ---------------------------------------------------------------- training state

def test_state_round_trip(tmp_path):
    path = tmp_path / "state.safetensors"
    arrays = {"adam.m.encoder.weight": np.ones((3, 2), np.float32),
              "adam.v.encoder.weight": np.full((3, 2), 1e-8, np.float32),
              "hidden.h": np.zeros((2, 4, 5)), "cursor": np.array(17, np.int64),
              "perm": np.arange(5, dtype=np.uint32), "mask": np.array([True, False]),
              "big_endian": np.arange(3, dtype=">i4"),
              "strided": np.arange(12, dtype=np.float64).reshape(3, 4)[:, ::2]}
    meta = {"step": 5, "epoch": 0.25, "lr": 2e-3, "seed": 123,
            "best_val_loss": float("inf"), "nested": {"a": [1, 2.5, None], "b": "x"}}
    ck.save_state(path, arrays, meta)
    state = ck.load_state(path)
    assert state.meta == meta and set(state.arrays) == set(arrays)
    for name, value in arrays.items():
        got = state.arrays[name]
        assert got.shape == value.shape and got.dtype == value.dtype.newbyteorder("=")
        np.testing.assert_array_equal(got, value)
        assert got.flags.writeable


def test_state_rejections(tmp_path):
    path = tmp_path / "state.safetensors"
    for arrays, meta in [({"x": np.array(["a"])}, {}),
                         ({"x": np.zeros(2, np.complex128)}, {}),
                         ({"__metadata__": np.zeros(1)}, {}),
                         ({}, {"x": {1, 2}}), ({}, [1])]:
        with pytest.raises(CheckpointError, match="cannot save"):
            ck.save_state(path, arrays, meta)
    ck.save_state(path, {"x": np.array([np.nan])}, {})   # saving is not judging...
    with pytest.raises(CheckpointError, match="NaN or Inf"):   # ...loading is
        ck.load_state(path)
    safetensors.numpy.save_file({"x": np.zeros(1)}, str(path), metadata={
        "format": "charrnn-state", "format_version": "1", "meta": "[]"})
    with pytest.raises(CheckpointError, match="meta is not a JSON object"):
        ck.load_state(path)
    with pytest.raises(CheckpointError, match="no such file"):
        ck.load_state(tmp_path / "nope")


def test_saving_streams_arrays_without_copying_them(tmp_path):
    """A save writes each array's own memory: no copy of the data on the way (the state
    save was once the peak memory of a whole training run). The file is a standard
    safetensors file: the library reads it back, tensors aligned to their item size."""
    big = np.arange(10_000_000, dtype=np.float32)              # 40 MB
    arrays = {"m": big, "v": big[::-1].copy(), "step": np.array([7], np.int64),
              "flags": np.array([True, False])}
    tracemalloc.start()
    ck.save_state(tmp_path / "s.safetensors", arrays, {"step": 7})
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 4 * 2**20, f"save allocated {peak / 2**20:.1f} MiB"
    back = safetensors.numpy.load_file(str(tmp_path / "s.safetensors"))
    for k, a in arrays.items():
        np.testing.assert_array_equal(back[k], a)
    raw = (tmp_path / "s.safetensors").read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    assert n % 8 == 0
    header = json.loads(raw[8:8 + n])
    for k, a in arrays.items():
        assert header[k]["data_offsets"][0] % a.dtype.itemsize == 0
    assert ck.load_state(tmp_path / "s.safetensors").meta == {"step": 7}
