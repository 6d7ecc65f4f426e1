"""What a transducer's and a classifier's C files share (c_seq2seq.py, c_classifier.py):
the bidirectional encoder over a string's characters, as charrnn.nn.reference_bidir
specifies it, one character at a time with c_runtime's float32 math.

    encoder_tables(em, params, prefix, cell, layers)   its weights, emitted; -> C tables
    CELL[cell]          cr_step: one cell of width H (an argument: sizes differ)
    ENCODE              charrnn_source_id, cr_cell, cr_encode; expects the macros L_, HE_,
                        C_, E_, G_, VS_, the tables, cr_src_emb, cr_src_codes and a
                        workspace type cr_ws with enc, x, a, g, eh (and ec for an LSTM)
    implementation(...) the file's text from the weights to the source characters
    c_string(s)         a C string literal of s (UTF-8, escaped); strings(...) a table

The encoder runs each layer forwards, then backwards, each from a zero state, into one of
two (CHARRNN_MAX_SOURCE, C) buffers that alternate between layers (one for one layer).
"""
import re

import numpy as np

from charrnn.export import c_runtime as rt
from charrnn.export.c_source import _array

MAX_SOURCE = 64   # default CHARRNN_MAX_SOURCE: CMUdict's longest word has 34 letters


def c_string(s):
    """A C string literal of s's UTF-8 bytes (octal escapes beyond printable ASCII)."""
    out = []
    for b in s.encode("utf-8"):
        ch = chr(b)
        out.append(ch if 0x20 <= b < 0x7f and ch not in '"\\?' else f"\\{b:03o}")
    return '"' + "".join(out) + '"'


def strings(name, values, comment):
    """A public table of C strings (UTF-8): static storage and `name`, a pointer to it."""
    return (_array("char *", f"{name}_", [c_string(v) for v in values], comment, 8)
            .replace("static const char *", "static const char *const ")
            + f"const char *const *const {name} = {name}_;\n")


def implementation(defines, cell, int8, em, tables, vocab):
    """A file's text from `#ifndef CHARRNN_DECLARATIONS_ONLY` through its source
    characters' table: the math (without the sigmoid for an RNN, which reads none), the
    matrix-vector products, the weights em emitted, the C tables, vocab's code points."""
    math = rt.MATH if cell != "rnn" else rt.MATH.replace(rt.SIGMOID, "")
    return ("\n#ifndef CHARRNN_DECLARATIONS_ONLY\n#include <math.h>\n#include <string.h>\n"
            + defines + math + (rt.MATVEC_I8 if int8 else rt.MATVEC_F32)
            + "\n/* ---- weights " + "-" * 70 + " */\n\n" + "\n".join(em.parts) + "\n"
            + "\n".join(tables) + "\n"
            + _array("uint32_t", "cr_src_codes", [str(ord(ch)) for ch in vocab] or ["0"],
                     "the source characters: code point of ids 1, 2, ...", 12))


def encoder_tables(em, params, prefix, cell, layers):
    """Emit the stack's weights (PyTorch names under `prefix`: "enc." or "rnn."); -> the
    C lines of the tables cr_encode indexes. LSTM and RNN: both biases summed (they add
    before the cell); GRU: b_hh kept apart (r scales b_hn)."""
    fused = cell != "gru"
    wi, wr, bi, br = [], [], [], []
    for k in range(layers):
        for d, sfx in enumerate(("", "_reverse")):
            n = f"l{k}{sfx}"
            p = {w: np.asarray(params[f"{prefix}{w}_{n}"], np.float32)
                 for w in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")}
            wi.append(em.matrix(f"enc_wi{k}_{d}", p["weight_ih"], f"encoder {n} W_ih"))
            wr.append(em.matrix(f"enc_wr{k}_{d}", p["weight_hh"], f"encoder {n} W_hh"))
            bi.append(em.vector(f"enc_bi{k}_{d}", p["bias_ih"] + p["bias_hh"] if fused
                                else p["bias_ih"], f"encoder {n} bias"))
            br.append("0" if fused else em.vector(f"enc_br{k}_{d}", p["bias_hh"],
                                                  f"encoder {n} b_hh"))
    return [f"static const cr_mat cr_enc_wi[2 * L_] = {{{', '.join(wi)}}};",
            f"static const cr_mat cr_enc_wr[2 * L_] = {{{', '.join(wr)}}};",
            f"static const float *const cr_enc_bi[2 * L_] = {{{', '.join(bi)}}};",
            f"static const float *const cr_enc_br[2 * L_] = {{{', '.join(br)}}};"]


def _with_width(cell):
    """c_runtime's cell of width H_ as cr_step(a, g, c, h, H): the width an argument (a
    transducer's encoder and decoder differ), the arguments a cell does not read unused;
    the element-wise math is c_runtime's, operation for operation, by construction."""
    src = re.sub(r"static void cr_cell\([^)]*\)\n\{\n    int j;\n",
                 "static void cr_step(float *a, const float *g, float *c, float *h, int H)\n"
                 "{\n    int j;\n" + "".join(f"    (void){v};\n" for v in UNUSED[cell]),
                 rt.CELLS[cell])
    return re.sub(r"\bH_\b", "H", src)


UNUSED = {"lstm": "g", "gru": "c", "rnn": "gc"}
# CR_FUSED: W_hh h is added into a and both biases folded (LSTM, RNN); the GRU keeps
# h W_hh^T + b_hh apart, in g (r scales b_hn)
CELL = {cell: _with_width(cell) + f"#define CR_FUSED {int(cell != 'gru')}\n"
        f"#define CR_LSTM {int(cell == 'lstm')}\n" for cell in ("lstm", "gru", "rnn")}

ENCODE = r"""
int charrnn_source_id(uint32_t code)
{
    int i;
    for (i = 0; i + 1 < VS_; i++)
        if (cr_src_codes[i] == code) return i + 1;
    return 0;
}

/* One cell step of width H: a = b_i + W_i x, g = b_r + W_r h (GRU; the LSTM and the
 * RNN add W_r h into a), then the cell. */
static void cr_cell(cr_ws *ws, cr_mat Wi, cr_mat Wr, const float *bi, const float *br,
                    const float *x, int D, float *c, float *h, int H)
{
    memcpy(ws->a, bi, (size_t)(G_ * H) * sizeof(float));
    cr_mv(ws->a, Wi, x, G_ * H, D);
    if (CR_FUSED) {
        cr_mv(ws->a, Wr, h, G_ * H, H);
    } else {
        memcpy(ws->g, br, (size_t)(G_ * H) * sizeof(float));
        cr_mv(ws->g, Wr, h, G_ * H, H);
    }
    cr_step(ws->a, ws->g, c, h, H);
}

/* The bidirectional encoder over src[0..n): its last layer's outputs in ws->enc[(L-1)%2]. */
static const float (*cr_encode(cr_ws *ws, const int *src, int n))[C_]
{
    int k, d, i;
    for (k = 0; k < L_; k++) {
        float (*out)[C_] = ws->enc[k % 2], (*in)[C_] = k ? ws->enc[(k + 1) % 2] : NULL;
        for (d = 0; d < 2; d++) {   /* forward, then reverse: each from a zero state */
            float *c = NULL;
#if CR_LSTM
            c = ws->ec;
            memset(ws->ec, 0, sizeof ws->ec);
#endif
            memset(ws->eh, 0, sizeof ws->eh);
            for (i = 0; i < n; i++) {
                int t = d ? n - 1 - i : i, id = src[t] < 0 || src[t] >= VS_ ? 0 : src[t];
                const float *x = ws->x;
                if (k == 0)
                    cr_row(ws->x, cr_src_emb, id, E_);
                else
                    x = in[t];
                cr_cell(ws, cr_enc_wi[2 * k + d], cr_enc_wr[2 * k + d], cr_enc_bi[2 * k + d],
                        cr_enc_br[2 * k + d], x, k == 0 ? E_ : C_, c, ws->eh, HE_);
                memcpy(out[t] + d * HE_, ws->eh, sizeof ws->eh);
            }
        }
    }
    return (const float (*)[C_])ws->enc[(L_ - 1) % 2];
}

"""
