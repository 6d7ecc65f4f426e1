"""Export a CharRNN to ONNX, built node by node with onnx.helper (no PyTorch).

Sizes: T time steps, B batch, V vocabulary, E embedding, H hidden, L layers.

The graph (one model both primes a prompt, T = len(prompt), and steps one character,
T = 1, carrying the state between calls):

    tokens (T, B) int64 --Gather(encoder.weight)--> x (T, B, E)
    h0 (L, B, H) --Split--> one (1, B, H) per layer (c0 likewise)
    layer k: ONNX LSTM / GRU / RNN node, X (T, B, D), initial_h = h0[k:k+1] (1, B, H)
             (and initial_c = c0[k:k+1] for the LSTM) -> Y (T, 1, B, H) -> Squeeze -> (T, B, H)
    decoder: MatMul(W_dec^T (H, V)) + Add(b_dec) -> logits (T, B, V)
    hn = Concat of the layers' Y_h (L, B, H); cn likewise for the LSTM.

ONNX's recurrent operators order and lay out their gates differently from PyTorch:
    LSTM  ONNX i, o, f, c   <- PyTorch i, f, g, o
    GRU   ONNX z, r, h      <- PyTorch r, z, n, with linear_before_reset=1 because
          PyTorch's n gate applies r after the recurrent product: r * (W_hn h + b_hn)
    B     (1, 2*G*H) = [input biases Wb | recurrent biases Rb], each in ONNX gate order.

Opset 17 and IR version 8 are pinned: onnxruntime supports both from 1.13 (2022) on, and
the files were checked to load and compute the same logits in onnxruntime 1.16.3, 1.20.1,
1.24.4 and 1.32.0.
"""
import json

import numpy as np

from charrnn.errors import ExportError

OPSET = 17
IR_VERSION = 8
# ONNX's gate block j is PyTorch's block GATE_ORDER[cell][j]
GATE_ORDER = {"lstm": [0, 3, 1, 2], "gru": [1, 0, 2], "rnn": [0]}
PROTOBUF_LIMIT = 2**31 - 2**24   # bytes of weights; the rest of the file is tiny
ONNX_OP = {"lstm": "LSTM", "gru": "GRU", "rnn": "RNN"}


def _require_onnx():
    try:
        import onnx
        from onnx import helper, numpy_helper
    except ImportError:
        raise ExportError('ONNX export needs the onnx package: pip install "charrnn-fast[onnx]"') \
            from None
    return onnx, helper, numpy_helper


class GraphBuilder:
    """One graph's initializers and nodes, added in order, then a checked model."""

    def __init__(self):
        self.onnx, self.helper, self.numpy_helper = _require_onnx()
        self.inits, self.nodes = [], []

    def const(self, name, array):
        self.inits.append(self.numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name

    def node(self, op, ins, outs, **attrs):
        self.nodes.append(self.helper.make_node(op, ins, outs, **attrs))

    def model(self, name, inputs, outputs, doc, meta):
        """The ModelProto (opset OPSET, IR IR_VERSION, meta as metadata_props), checked."""
        h = self.helper
        graph = h.make_graph(self.nodes, name, inputs, outputs, initializer=self.inits,
                             doc_string=doc)
        m = h.make_model(graph, producer_name="charrnn", ir_version=IR_VERSION,
                         opset_imports=[h.make_opsetid("", OPSET)], doc_string=doc)
        m.producer_version = meta["charrnn_version"]
        h.set_model_props(m, meta)
        self.onnx.checker.check_model(m, full_check=True)
        return m


def check_size(parameters):
    if parameters * 4 > PROTOBUF_LIMIT:
        raise ExportError(f"the model has {parameters:,} parameters: too large for one "
                          f"ONNX file (protobuf's 2 GB limit)")


def reorder_gates(a, cell, H):
    """Rows (or entries) of a PyTorch (G*H, ...) array in ONNX's gate order."""
    blocks = [a[g * H:(g + 1) * H] for g in range(len(GATE_ORDER[cell]))]
    return np.concatenate([blocks[j] for j in GATE_ORDER[cell]], axis=0)


def metadata(model):
    """The metadata_props of an exported model: vocabulary, config, charrnn version."""
    from charrnn.version import __version__
    return {"vocab": json.dumps(model.vocab, ensure_ascii=False),
            "config": json.dumps(model.config, sort_keys=True),
            "charrnn_version": __version__,
            "format": "charrnn-onnx-1"}


def build_onnx(model):
    """The onnx.ModelProto of `model` (a CharRNN), checked by onnx.checker."""
    g = GraphBuilder()
    helper, const = g.helper, g.const
    from onnx import TensorProto
    cfg, p = model.cfg, model.params
    cell, H, L, V = cfg.cell, cfg.hidden, cfg.layers, cfg.vocab_size
    lstm = cell == "lstm"
    f32 = np.float32
    check_size(model.flat.size)
    nodes = g.nodes

    const("encoder.weight", p["encoder.weight"].astype(f32))                # (V, E)
    nodes.append(helper.make_node("Gather", ["encoder.weight", "tokens"], ["x0"], axis=0))
    const("squeeze_axes", np.array([1], np.int64))
    # The state inputs split into one (1, B, H) slice per layer, as the operators want
    # them. One Split, not a Gather per layer: onnxruntime 1.20's graph optimiser fuses
    # such Gathers and then rejects its own result ("two nodes with same node name").
    for name in ("h0", "c0") if lstm else ("h0",):
        if L > 1:
            nodes.append(helper.make_node("Split", [name], [f"{name}_{k}" for k in range(L)],
                                          axis=0))
    x, hs, cs = "x0", [], []
    for k in range(L):
        W = reorder_gates(p[f"rnn.weight_ih_l{k}"], cell, H)[None].astype(f32)   # (1, GH, D)
        R = reorder_gates(p[f"rnn.weight_hh_l{k}"], cell, H)[None].astype(f32)   # (1, GH, H)
        Bb = np.concatenate([reorder_gates(p[f"rnn.bias_ih_l{k}"], cell, H),
                             reorder_gates(p[f"rnn.bias_hh_l{k}"], cell, H)])[None]  # (1, 2GH)
        const(f"W{k}", W)
        const(f"R{k}", R)
        const(f"B{k}", Bb.astype(f32))
        ins = [x, f"W{k}", f"R{k}", f"B{k}", "", f"h0_{k}" if L > 1 else "h0"]
        outs = [f"y{k}", f"hn{k}"]
        if lstm:
            ins.append(f"c0_{k}" if L > 1 else "c0")
            outs.append(f"cn{k}")
        extra = {"linear_before_reset": 1} if cell == "gru" else {}
        if cell == "rnn":
            extra["activations"] = ["Tanh"]
        nodes.append(helper.make_node(ONNX_OP[cell], ins, outs, name=f"{cell}{k}",
                                      hidden_size=H, direction="forward", **extra))
        nodes.append(helper.make_node("Squeeze", [f"y{k}", "squeeze_axes"], [f"x{k + 1}"]))
        x = f"x{k + 1}"
        hs.append(f"hn{k}")
        cs.append(f"cn{k}")
    const("decoder.weight_t", p["decoder.weight"].T.astype(f32))            # (H, V)
    const("decoder.bias", p["decoder.bias"].astype(f32))                    # (V,)
    nodes.append(helper.make_node("MatMul", [x, "decoder.weight_t"], ["z"]))
    nodes.append(helper.make_node("Add", ["z", "decoder.bias"], ["logits"]))
    nodes.append(helper.make_node("Concat", hs, ["hn"], axis=0))           # (L, B, H)
    if lstm:
        nodes.append(helper.make_node("Concat", cs, ["cn"], axis=0))

    state = [L, "B", H]
    inputs = [helper.make_tensor_value_info("tokens", TensorProto.INT64, ["T", "B"]),
              helper.make_tensor_value_info("h0", TensorProto.FLOAT, state)]
    outputs = [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["T", "B", V]),
               helper.make_tensor_value_info("hn", TensorProto.FLOAT, state)]
    if lstm:
        inputs.append(helper.make_tensor_value_info("c0", TensorProto.FLOAT, state))
        outputs.append(helper.make_tensor_value_info("cn", TensorProto.FLOAT, state))
    doc = (f"charrnn {cell} {L}x{H}: tokens (T, B) int64 ids into the vocabulary "
           f"(metadata 'vocab'), h0{' and c0' if lstm else ''} (L, B, H) the state "
           f"(zeros to start) -> logits (T, B, V) for the character after each token, "
           f"and the state after the last one.")
    return g.model(f"charrnn_{cell}", inputs, outputs, doc, metadata(model))
