"""Export a transducer (`charrnn train --task seq2seq`) as one self-contained C99 file:
the weights as static const arrays, no malloc, the workspace in a struct the caller owns,
greedy decoding (what `charrnn transduce` does without --beam).

Sizes: Vs / Vt source / target vocabularies (ids as charrnn.training.seq2seq.Transducer
gives them: source 0 unknown, i + 1 its character i; target 0 BOS, 1 EOS, i + 2 its
token i), E embedding, He encoder hidden per direction, C = 2 He, Hd decoder hidden,
A attention size, L encoder layers, G gate blocks, S the longest source the workspace
holds (CHARRNN_MAX_SOURCE, 64 unless defined before the file is compiled).

The model is charrnn.nn.reference_seq2seq's, computed one step at a time with the
C runtime's float32 math (charrnn.export.c_runtime: the same fast exp behind sigmoid and
tanh as the kernels); weights are stored row-major in the order the matrix-vector
products read them: attn.W_k and attn.W_q (stored input-major) are transposed here.
int8: every matrix row as round(W[r] / s_r), s_r = max|W[r]| / 127, as c_source does.
"""
import json

import numpy as np

from charrnn.errors import ExportError
from charrnn.export import c_program
from charrnn.export.c_bidir import CELL, ENCODE, MAX_SOURCE, encoder_tables, implementation, strings
from charrnn.export.c_source import _Emitter, _comment, check_prefix, renamed
from charrnn.nn.shapes import GATES

def _weights(tr, em):
    """Emit every weight; -> the C lines of the tables the code indexes."""
    m, c = tr.model, tr.model.config
    p = {k: np.asarray(v, np.float32) for k, v in m.params.items()}
    lstm = c["cell"] == "lstm"
    dec_bi = p["dec.bias_ih"] + p["dec.bias_hh"] if lstm else p["dec.bias_ih"]
    names = {
        "src_emb": em.matrix("src_emb", p["src_embed"], "source embedding"),
        "tgt_emb": em.matrix("tgt_emb", p["tgt_embed"], "target embedding"),
        "dec_wi": em.matrix("dec_wi", p["dec.weight_ih"], "decoder W_ih over [embedding ; ctx]"),
        "dec_wr": em.matrix("dec_wr", p["dec.weight_hh"], "decoder W_hh"),
        "dec_bi": em.vector("dec_bi", dec_bi, "decoder bias"),
        "dec_br": "0" if lstm else em.vector("dec_br", p["dec.bias_hh"], "decoder b_hh"),
        "wk": em.matrix("wk", p["attn.W_k"].T.copy(), "attention keys W_k^T (A, C)"),
        "out_w": em.matrix("out_w", p["out.weight"], "output layer over [h ; ctx]"),
        "out_b": em.vector("out_b", p["out.bias"], "output bias"),
    }
    if c["attention"] == "bahdanau":
        names["wq"] = em.matrix("wq", p["attn.W_q"].T.copy(), "attention query W_q^T (A, Hd)")
        names["v"] = em.vector("v", p["attn.v"], "attention v")
    tables = encoder_tables(em, p, "enc.", c["cell"], c["layers"])
    tables += [f"static const {'float *const' if k in ('dec_bi', 'dec_br', 'v', 'out_b') else 'cr_mat'}"
               f" cr_{k} = {v};" for k, v in names.items()]
    return tables


def c_seq2seq_source(tr, int8=False, prefix="charrnn"):
    """The C99 text of `tr` (a charrnn.training.seq2seq.Transducer)."""
    from charrnn.version import __version__
    check_prefix(prefix)
    c = tr.model.config
    if any(len(ch) != 1 for ch in tr.src_vocab):
        raise ExportError("the C export reads sources as characters; this transducer's "
                          "source vocabulary is not one of characters")
    G = GATES[c["cell"]]
    He, Hd, E, L = c["hidden"], c["decoder"], c["embed"], c["layers"]
    A = c["attn"] if c["attention"] == "bahdanau" else Hd
    em = _Emitter(int8)
    tables = _weights(tr, em)
    Vs, Vt = c["src_vocab"], c["tgt_vocab"]
    what = (f"{c['cell']} encoder {L}x{He} (bidirectional), {Hd}-unit decoder, "
            f"{c['attention']} attention, {'int8' if int8 else 'float32'} weights")
    src = HEADER.format(what=what, version=__version__, flash=em.flash, config=_comment(
        json.dumps(c, sort_keys=True)), cell=c["cell"], attention=c["attention"], L=L,
        He=He, Hd=Hd, E=E, A=A, G=G, Vs=Vs, Vt=Vt, max_len=tr.max_len,
        words=int(tr.tokens == "words"), max_source=MAX_SOURCE, int8=int(int8),
        state_c=("    float ec[CHARRNN_ENC_HIDDEN], dc[CHARRNN_DEC_HIDDEN];   /* LSTM cells */\n"
                 if c["cell"] == "lstm" else ""))
    src += implementation(DEFINES, c["cell"], int8, em, tables, tr.src_vocab)
    src += strings("charrnn_target_tokens", ["", ""] + list(tr.tgt_vocab),
                   "the target tokens by id (BOS and EOS: empty)")
    src += "\ntypedef charrnn_s2s cr_ws;\n" + CELL[c["cell"]] + ENCODE
    src += BODY.replace("@ATTEND@", ATTEND[c["attention"]])
    src += c_program.S2S_MAIN + "\n#endif /* CHARRNN_DECLARATIONS_ONLY */\n"
    return renamed(src, prefix)


HEADER = """\
/* charrnn transducer: {what}.
 * Exported by charrnn {version}; one self-contained C99 file, no dependency beyond the C
 * library (libm for the log-probability), no malloc. Weights: {flash} bytes of static
 * const data (flash on an MCU); the workspace (charrnn_s2s) is the caller's.
 *
 * Use it as a library (`#define CHARRNN_DECLARATIONS_ONLY` before including this file
 * gives just the declarations below):
 *     static charrnn_s2s ws;   int src[64], out[CHARRNN_MAX_OUTPUT], n, i;
 *     src[i] = charrnn_source_id(code point of character i);       (0: unknown)
 *     n = charrnn_transduce(&ws, src, length, out, CHARRNN_MAX_OUTPUT, NULL);
 *     for (i = 0; i < n; i++) print charrnn_target_tokens[out[i]];  (space-separated
 *                                                   when CHARRNN_TARGET_WORDS is 1)
 * or as a program:  cc -std=c99 -O2 -DCHARRNN_MAIN model.c -lm -o model
 *     ./model hello world          (or one text per line on standard input)
 *     ./model --scores hello       (each output's log-probability, EOS included)
 * It decodes greedily: the outputs of `charrnn transduce RUN` without --beam.
 *
 * config: {config}
 */
#ifndef CHARRNN_S2S_H
#define CHARRNN_S2S_H
#include <stdint.h>

#define CHARRNN_CELL "{cell}"
#define CHARRNN_ATTENTION "{attention}"
#define CHARRNN_LAYERS {L}              /* encoder layers, each bidirectional */
#define CHARRNN_ENC_HIDDEN {He}         /* per direction */
#define CHARRNN_DEC_HIDDEN {Hd}
#define CHARRNN_EMBED {E}
#define CHARRNN_ATTN {A}
#define CHARRNN_GATES {G}
#define CHARRNN_SRC_VOCAB {Vs}          /* ids: 0 unknown, then the source characters */
#define CHARRNN_TGT_VOCAB {Vt}          /* ids: 0 BOS, 1 EOS, then the target tokens */
#define CHARRNN_MAX_OUTPUT {max_len}     /* tokens, as charrnn transduce's default --max-len */
#define CHARRNN_TARGET_WORDS {words}     /* 1: tokens are joined by spaces; 0: by nothing */
#define CHARRNN_INT8 {int8}
#define CHARRNN_BYTES 0                 /* sources are read as UTF-8 */
#ifndef CHARRNN_MAX_SOURCE
#define CHARRNN_MAX_SOURCE {max_source}     /* longest source the workspace holds */
#endif

/* The workspace, owned by the caller (static: it holds the encoder's outputs). */
typedef struct charrnn_s2s {{
    float enc[CHARRNN_LAYERS > 1 ? 2 : 1][CHARRNN_MAX_SOURCE][2 * CHARRNN_ENC_HIDDEN];   /* layers' outputs */
    float keys[CHARRNN_MAX_SOURCE][CHARRNN_ATTN];
    float score[CHARRNN_MAX_SOURCE];
    float x[CHARRNN_EMBED + 2 * CHARRNN_ENC_HIDDEN];   /* a cell's input */
    float a[CHARRNN_GATES * (CHARRNN_ENC_HIDDEN > CHARRNN_DEC_HIDDEN ? CHARRNN_ENC_HIDDEN : CHARRNN_DEC_HIDDEN)];
    float g[CHARRNN_GATES * (CHARRNN_ENC_HIDDEN > CHARRNN_DEC_HIDDEN ? CHARRNN_ENC_HIDDEN : CHARRNN_DEC_HIDDEN)];
    float eh[CHARRNN_ENC_HIDDEN];
    float feat[CHARRNN_DEC_HIDDEN + 2 * CHARRNN_ENC_HIDDEN];   /* [h ; ctx] */
    float q[CHARRNN_ATTN];
    float logits[CHARRNN_TGT_VOCAB];
{state_c}}} charrnn_s2s;

/* target id -> its token (UTF-8), CHARRNN_TGT_VOCAB entries */
extern const char *const *const charrnn_target_tokens;
/* code point -> source id; 0 (unknown) if the model never saw it */
int charrnn_source_id(uint32_t code);
/* Greedy decoding of src[0..n): writes the output's target ids (EOS excluded) to out and
 * returns their count (at most max_out, and CHARRNN_MAX_OUTPUT); -1 if n is not in
 * 1..CHARRNN_MAX_SOURCE. logprob: NULL, or where its log-probability goes (EOS included
 * when it was reached). */
int charrnn_transduce(charrnn_s2s *ws, const int *src, int n, int *out, int max_out,
                      double *logprob);
#endif
"""

DEFINES = """
#define L_ CHARRNN_LAYERS
#define HE_ CHARRNN_ENC_HIDDEN
#define HD_ CHARRNN_DEC_HIDDEN
#define C_ (2 * CHARRNN_ENC_HIDDEN)
#define E_ CHARRNN_EMBED
#define A_ CHARRNN_ATTN
#define G_ CHARRNN_GATES
#define VS_ CHARRNN_SRC_VOCAB
#define VT_ CHARRNN_TGT_VOCAB
"""

# score_j of the decoder state h (ws->feat[0..HD_)) against position j's key
ATTEND = {
    "luong": """\
        for (j = 0; j < n; j++) {   /* score_j = h . k_j */
            float s = 0;
            for (i = 0; i < A_; i++) s += h[i] * ws->keys[j][i];
            ws->score[j] = s;
        }""",
    "bahdanau": """\
        memset(ws->q, 0, sizeof ws->q);
        cr_mv(ws->q, cr_wq, h, A_, HD_);
        for (j = 0; j < n; j++) {   /* score_j = v . tanh(h W_q + k_j) */
            float s = 0;
            for (i = 0; i < A_; i++) s += cr_v[i] * cr_tanh(ws->q[i] + ws->keys[j][i]);
            ws->score[j] = s;
        }""",
}

BODY = r"""
int charrnn_transduce(charrnn_s2s *ws, const int *src, int n, int *out, int max_out,
                      double *logprob)
{
    const float (*e)[C_];
    float *h = ws->feat, *ctx = ws->feat + HD_, *c = NULL;
    int s, i, j, prev = 0, count = 0;
    double lp = 0;
    if (n < 1 || n > CHARRNN_MAX_SOURCE) return -1;
    if (max_out > CHARRNN_MAX_OUTPUT) max_out = CHARRNN_MAX_OUTPUT;
    e = cr_encode(ws, src, n);
    for (j = 0; j < n; j++) {   /* keys k_j = e_j W_k, once per source */
        memset(ws->keys[j], 0, sizeof ws->keys[j]);
        cr_mv(ws->keys[j], cr_wk, e[j], A_, C_);
    }
    memset(ws->feat, 0, sizeof ws->feat);   /* h_0 = 0, ctx_0 = 0 */
#if CR_LSTM
    c = ws->dc;
    memset(ws->dc, 0, sizeof ws->dc);
#endif
    for (s = 0; s < max_out; s++) {   /* as charrnn's greedy: at most max_out steps */
        float m, sum = 0, top;
        int arg = 1;   /* BOS is never an output: the argmax runs from EOS on */
        cr_row(ws->x, cr_tgt_emb, prev, E_);   /* x_s = [tgt_embed[prev] ; ctx_{s-1}] */
        memcpy(ws->x + E_, ctx, C_ * sizeof(float));
        cr_cell(ws, cr_dec_wi, cr_dec_wr, cr_dec_bi, cr_dec_br, ws->x, E_ + C_, c, h, HD_);
@ATTEND@
        m = ws->score[0];
        for (j = 1; j < n; j++) m = ws->score[j] > m ? ws->score[j] : m;
        for (j = 0; j < n; j++) sum += (ws->score[j] = cr_expf(ws->score[j] - m));
        memset(ctx, 0, C_ * sizeof(float));
        for (j = 0; j < n; j++) {   /* ctx = sum_j alpha_j e_j */
            float alpha = ws->score[j] / sum;
            for (i = 0; i < C_; i++) ctx[i] += alpha * e[j][i];
        }
        memcpy(ws->logits, cr_out_b, sizeof ws->logits);
        cr_mv(ws->logits, cr_out_w, ws->feat, VT_, HD_ + C_);
        for (i = 2; i < VT_; i++)
            if (ws->logits[i] > ws->logits[arg]) arg = i;
        if (logprob) {   /* log softmax over every id, BOS included, in double */
            double z = 0;
            top = ws->logits[0];
            for (i = 1; i < VT_; i++) top = ws->logits[i] > top ? ws->logits[i] : top;
            for (i = 0; i < VT_; i++) z += exp((double)ws->logits[i] - top);
            lp += ((double)ws->logits[arg] - top) - log(z);
        }
        if (arg == 1) break;   /* EOS */
        out[count++] = arg;
        prev = arg;
    }
    if (logprob) *logprob = lp;
    return count;
}
"""
