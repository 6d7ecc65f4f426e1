"""Export a transducer (charrnn.training.seq2seq.Transducer) to ONNX: two graphs, the
encoder and one decoder step; the caller runs the decoding loop (greedy or beam search,
as charrnn.nn.seq2seq_decode does), as with any ONNX encoder-decoder.

Sizes: S source steps, B rows, E embedding, He encoder hidden per direction, C = 2He,
Hd decoder hidden, A attention size (Luong: Hd), Vt target vocabulary (0 BOS, 1 EOS,
then tgt_vocab), L encoder layers.

encode.onnx:  src (S, B) int64 (src_vocab[i] is id i + 1, 0 any other character),
              src_len (B,) int32
    x = Gather(src_embed, src);  the bidirectional stack (onnx_classifier's)   (S, B, C)
    E = Transpose -> (B, S, C);  K = E attn.W_k                                (B, S, A)
step.onnx:    prev (B,) int64, h (B, Hd), [c (B, Hd) for an LSTM], ctx (B, C), E, K, src_len
    x  = [tgt_embed[prev] ; ctx];  h', c' = one step of an ONNX LSTM / GRU node
    score_j = h' . K_j (Luong)  or  v . tanh(h' W_q + K_j) (Bahdanau), -inf past src_len
    a = Softmax(score);  ctx' = a E;  logprobs = LogSoftmax([h' ; ctx'] out.weight^T + out.bias)
    -> logprobs (B, Vt), h', [c'], ctx'

Start from prev = BOS (0) and zeros; never pick BOS; an output ends at EOS (1) or after
max_len tokens (metadata). Tested: a greedy loop over onnxruntime gives `charrnn
transduce`'s outputs (tests/test_export_seq2seq_onnx.py).
"""
import json

import numpy as np

from charrnn.export.onnx_classifier import bidirectional_stack
from charrnn.export.onnx_graph import GraphBuilder, ONNX_OP, check_size, reorder_gates


def metadata(t):
    from charrnn.version import __version__
    return {"src_vocab": json.dumps(t.src_vocab, ensure_ascii=False),
            "tgt_vocab": json.dumps(t.tgt_vocab, ensure_ascii=False),
            "tokens": t.tokens, "max_len": str(t.max_len), "bos": "0", "eos": "1",
            "config": json.dumps(t.model.config, sort_keys=True),
            "charrnn_version": __version__, "format": "charrnn-seq2seq-onnx-1"}


def build_seq2seq_onnx(t):
    """(encode, step): the onnx.ModelProto of each graph, checked by onnx.checker."""
    from onnx import TensorProto, helper
    m = t.model
    cfg, p = m.cfg, m.params
    check_size(m.flat.size)
    cell, He, Hd, L = cfg.cell, cfg.hidden, cfg.decoder, cfg.layers
    C, A, Vt = 2 * He, p["attn.W_k"].shape[1], cfg.tgt_vocab
    lstm, f32 = cell == "lstm", np.float32
    FLOAT, INT64, INT32 = TensorProto.FLOAT, TensorProto.INT64, TensorProto.INT32
    io = helper.make_tensor_value_info

    def model(g, name, inputs, outputs, doc):
        return g.model(name, inputs, outputs, doc, metadata(t))

    # ---- encode -------------------------------------------------------------------------
    g = GraphBuilder()
    g.const("src_embed", p["src_embed"].astype(f32))
    g.node("Gather", ["src_embed", "src"], ["x0"], axis=0)
    top = bidirectional_stack(g.node, g.const, p, "enc", cell, He, L, "x0", "src_len")
    g.node("Transpose", [top], ["E"], perm=[1, 0, 2])                          # (B, S, C)
    g.const("attn.W_k", p["attn.W_k"].astype(f32))                             # (C, A)
    g.node("MatMul", ["E", "attn.W_k"], ["K"])                                 # (B, S, A)
    encode = model(g, "charrnn_encode", [io("src", INT64, ["S", "B"]), io("src_len", INT32, ["B"])],
                   [io("E", FLOAT, ["B", "S", C]), io("K", FLOAT, ["B", "S", A])],
                   f"charrnn transducer encoder ({L}x{He} bidirectional {cell}): src (S, B), "
                   "src_len (B,) -> E (B, S, C), K (B, S, A) for step.onnx")

    # ---- one decoder step ---------------------------------------------------------------
    g = GraphBuilder()
    c = g.const
    c("tgt_embed", p["tgt_embed"].astype(f32))
    c("ax0", np.array([0], np.int64))
    c("ax1", np.array([1], np.int64))
    c("ax2", np.array([2], np.int64))
    g.node("Gather", ["tgt_embed", "prev"], ["emb"], axis=0)                   # (B, E)
    g.node("Concat", ["emb", "ctx"], ["xs"], axis=1)                           # (B, E + C)
    g.node("Unsqueeze", ["xs", "ax0"], ["X"])                                  # (1, B, D)
    c("W", reorder_gates(p["dec.weight_ih"], cell, Hd)[None].astype(f32))
    c("R", reorder_gates(p["dec.weight_hh"], cell, Hd)[None].astype(f32))
    c("Bias", np.concatenate([reorder_gates(p["dec.bias_ih"], cell, Hd),
                              reorder_gates(p["dec.bias_hh"], cell, Hd)])[None].astype(f32))
    g.node("Unsqueeze", ["h", "ax0"], ["h0"])
    ins, outs = ["X", "W", "R", "Bias", "", "h0"], ["", "hn"]
    if lstm:
        g.node("Unsqueeze", ["c", "ax0"], ["c0"])
        ins.append("c0")
        outs.append("cn")
    extra = {"linear_before_reset": 1} if cell == "gru" else {}
    g.node(ONNX_OP[cell], ins, outs, name="decoder", hidden_size=Hd, direction="forward",
           **extra)
    g.node("Squeeze", ["hn", "ax0"], ["h_next"])                               # (B, Hd)
    if lstm:
        g.node("Squeeze", ["cn", "ax0"], ["c_next"])
    if cfg.attention == "luong":
        g.node("Unsqueeze", ["h_next", "ax2"], ["q"])                          # (B, Hd, 1)
        g.node("MatMul", ["K", "q"], ["s3"])                                   # (B, S, 1)
    else:
        c("attn.W_q", p["attn.W_q"].astype(f32))                               # (Hd, A)
        c("attn.v", p["attn.v"].reshape(-1, 1).astype(f32))                    # (A, 1)
        g.node("MatMul", ["h_next", "attn.W_q"], ["qa"])                       # (B, A)
        g.node("Unsqueeze", ["qa", "ax1"], ["q"])                              # (B, 1, A)
        g.node("Add", ["K", "q"], ["kq"])
        g.node("Tanh", ["kq"], ["t"])
        g.node("MatMul", ["t", "attn.v"], ["s3"])                              # (B, S, 1)
    g.node("Squeeze", ["s3", "ax2"], ["scores"])                               # (B, S)
    # positions j >= src_len never attended: score -inf before the softmax
    c("zero", np.array(0, np.int64))
    c("one", np.array(1, np.int64))
    c("minus_inf", np.array(-np.inf, f32))
    g.node("Shape", ["E"], ["E_shape"])
    g.node("Gather", ["E_shape", "one"], ["S"], axis=0)
    g.node("Range", ["zero", "S", "one"], ["steps"])                           # (S,)
    g.node("Unsqueeze", ["steps", "ax0"], ["steps_1s"])                        # (1, S)
    g.node("Cast", ["src_len"], ["len64"], to=INT64)
    g.node("Unsqueeze", ["len64", "ax1"], ["len_b1"])                          # (B, 1)
    g.node("Less", ["steps_1s", "len_b1"], ["valid"])                          # (B, S)
    g.node("Where", ["valid", "scores", "minus_inf"], ["masked"])
    g.node("Softmax", ["masked"], ["a"], axis=1)
    g.node("Unsqueeze", ["a", "ax1"], ["a3"])                                  # (B, 1, S)
    g.node("MatMul", ["a3", "E"], ["ctx3"])                                    # (B, 1, C)
    g.node("Squeeze", ["ctx3", "ax1"], ["ctx_next"])                           # (B, C)
    g.node("Concat", ["h_next", "ctx_next"], ["feat"], axis=1)                 # (B, Hd + C)
    c("out.weight_t", p["out.weight"].T.astype(f32))                           # (Hd + C, Vt)
    c("out.bias", p["out.bias"].astype(f32))
    g.node("MatMul", ["feat", "out.weight_t"], ["z"])
    g.node("Add", ["z", "out.bias"], ["logits"])
    g.node("LogSoftmax", ["logits"], ["logprobs"], axis=1)
    inputs = [io("prev", INT64, ["B"]), io("h", FLOAT, ["B", Hd])]
    outputs = [io("logprobs", FLOAT, ["B", Vt]), io("h_next", FLOAT, ["B", Hd])]
    if lstm:
        inputs.append(io("c", FLOAT, ["B", Hd]))
        outputs.append(io("c_next", FLOAT, ["B", Hd]))
    inputs += [io("ctx", FLOAT, ["B", C]), io("E", FLOAT, ["B", "S", C]),
               io("K", FLOAT, ["B", "S", A]), io("src_len", INT32, ["B"])]
    outputs.append(io("ctx_next", FLOAT, ["B", C]))
    step = model(g, "charrnn_step", inputs, outputs,
                 f"charrnn transducer decoder step ({Hd}-unit {cell}, {cfg.attention} "
                 "attention): prev token, state, E, K, src_len -> log-probabilities of the "
                 "next token (0 BOS, 1 EOS, then the metadata's tgt_vocab), the next state")
    return encode, step
