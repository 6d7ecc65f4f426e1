"""Export a classifier (charrnn.classifier.TextClassifier) to ONNX, node by node.

Sizes: T time steps, B texts, V vocabulary, E embedding, H hidden per direction, L
layers, C labels. Inputs: ids (T, B) int64, each text's characters in its column (id
i + 1 for vocab[i], 0 for a character the model never saw; what lies past a text's end
is never read), lengths (B,) int32. Outputs: probabilities (B, C) and logits (B, C).

    x (T, B, E) = Gather(encoder.weight, ids)
    layer k: ONNX LSTM / GRU / RNN, direction "bidirectional", sequence_lens = lengths:
             Y (T, 2, B, H) -> Transpose (T, B, 2, H) -> Reshape (T, B, 2H): the next input
    "final": Y_h (2, B, H) of the top layer, the forward state after the text's last
             character and the reverse one after its first -> (B, 2H)
    "mean":  the top layer's outputs times a (T, B, 1) mask of the valid steps, summed
             over T, over lengths
    logits = features W^T + b;  probabilities = Softmax(logits)

The gates are reordered as for the language model (onnx_graph.reorder_gates); each
direction's weights are one slice of W (2, GH, D), R (2, GH, H), B (2, 2GH). Tested:
onnxruntime's probabilities against `charrnn classify`'s (tests/test_export_classifier_onnx.py).
"""
import json

import numpy as np

from charrnn.export.onnx_graph import GraphBuilder, ONNX_OP, check_size, reorder_gates


def bidirectional_stack(node, const, p, prefix, cell, H, L, x, lengths):
    """Nodes of an L-layer bidirectional stack over x (T, B, D) with per-row lengths,
    weights p[f"{prefix}.weight_ih_l{k}[_reverse]"] etc. (PyTorch's names); returns the
    top layer's output (T, B, 2H). Layer k's final states are "hn{k}" (2, B, H)."""
    f32 = np.float32
    const("shape_tb2h", np.array([0, 0, 2 * H], np.int64))
    for k in range(L):
        def both(kind):   # forward then reverse, each in ONNX's gate order: (2, GH, ...)
            return np.stack([reorder_gates(p[f"{prefix}.{kind}_l{k}{s}"], cell, H)
                             for s in ("", "_reverse")])
        const(f"W{k}", both("weight_ih").astype(f32))
        const(f"R{k}", both("weight_hh").astype(f32))
        const(f"B{k}", np.concatenate([both("bias_ih"), both("bias_hh")], axis=1).astype(f32))
        extra = {"linear_before_reset": 1} if cell == "gru" else {}
        if cell == "rnn":
            extra["activations"] = ["Tanh", "Tanh"]
        node(ONNX_OP[cell], [x, f"W{k}", f"R{k}", f"B{k}", lengths], [f"y{k}", f"hn{k}"],
             name=f"{cell}{k}", hidden_size=H, direction="bidirectional", **extra)
        node("Transpose", [f"y{k}"], [f"yt{k}"], perm=[0, 2, 1, 3])          # (T, B, 2, H)
        node("Reshape", [f"yt{k}", "shape_tb2h"], [f"x{k + 1}"])             # (T, B, 2H)
        x = f"x{k + 1}"
    return x


def metadata(clf):
    from charrnn.version import __version__
    return {"vocab": json.dumps(clf.vocab, ensure_ascii=False),
            "labels": json.dumps(clf.labels, ensure_ascii=False),
            "config": json.dumps(clf.model.config, sort_keys=True),
            "charrnn_version": __version__, "format": "charrnn-classifier-onnx-1"}


def build_classifier_onnx(clf):
    """The onnx.ModelProto of a TextClassifier, checked by onnx.checker."""
    g = GraphBuilder()
    helper, const, node = g.helper, g.const, g.node
    from onnx import TensorProto
    m = clf.model
    cfg, p = m.cfg, m.params
    cell, H, L, C = cfg.cell, cfg.hidden, cfg.layers, len(clf.labels)
    f32 = np.float32
    check_size(m.flat.size)

    const("encoder.weight", p["encoder.weight"].astype(f32))                # (V, E)
    node("Gather", ["encoder.weight", "ids"], ["x0"], axis=0)
    x = bidirectional_stack(node, const, p, "rnn", cell, H, L, "x0", "lengths")
    top = L - 1
    if cfg.pool == "final":
        node("Transpose", [f"hn{top}"], ["hnt"], perm=[1, 0, 2])             # (B, 2, H)
        const("shape_b2h", np.array([0, 2 * H], np.int64))
        node("Reshape", ["hnt", "shape_b2h"], ["features"])                 # (B, 2H)
    else:
        # mask (T, B, 1): step t is valid for text b when t < lengths[b]
        const("zero", np.array(0, np.int64))
        const("one", np.array(1, np.int64))
        const("axis0", np.array([0], np.int64))
        const("one_d", np.array([1], np.int64))
        const("axis2", np.array([2], np.int64))
        node("Shape", ["ids"], ["ids_shape"])
        node("Gather", ["ids_shape", "zero"], ["T"], axis=0)
        node("Range", ["zero", "T", "one"], ["steps"])                        # (T,)
        node("Unsqueeze", ["steps", "one_d"], ["steps_t1"])                  # (T, 1)
        node("Cast", ["lengths"], ["lengths64"], to=TensorProto.INT64)
        node("Less", ["steps_t1", "lengths64"], ["valid"])                   # (T, B)
        node("Cast", ["valid"], ["valid_f"], to=TensorProto.FLOAT)
        node("Unsqueeze", ["valid_f", "axis2"], ["mask"])                    # (T, B, 1)
        node("Mul", [x, "mask"], ["masked"])
        node("ReduceSum", ["masked", "axis0"], ["summed"], keepdims=0)       # (B, 2H)
        node("Cast", ["lengths"], ["lengths_f"], to=TensorProto.FLOAT)
        node("Unsqueeze", ["lengths_f", "one_d"], ["lengths_b1"])            # (B, 1)
        node("Div", ["summed", "lengths_b1"], ["features"])
    const("decoder.weight_t", p["decoder.weight"].T.astype(f32))            # (2H, C)
    const("decoder.bias", p["decoder.bias"].astype(f32))                    # (C,)
    node("MatMul", ["features", "decoder.weight_t"], ["z"])
    node("Add", ["z", "decoder.bias"], ["logits"])
    node("Softmax", ["logits"], ["probabilities"], axis=1)

    inputs = [helper.make_tensor_value_info("ids", TensorProto.INT64, ["T", "B"]),
              helper.make_tensor_value_info("lengths", TensorProto.INT32, ["B"])]
    outputs = [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["B", C]),
               helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["B", C])]
    doc = (f"charrnn classifier, bidirectional {cell} {L}x{H}, {cfg.pool} pooling: ids "
           f"(T, B) int64 (vocab[i] is id i + 1, 0 any other character; metadata 'vocab'), "
           f"lengths (B,) int32 -> probabilities (B, C) over the metadata's 'labels'.")
    return g.model(f"charrnn_classifier_{cell}", inputs, outputs, doc, metadata(clf))
