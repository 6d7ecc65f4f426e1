"""Export a CharRNN as one self-contained C99 file: weights as static const arrays (flash
on a microcontroller), no malloc, the state in a struct the caller owns.

Sizes: V vocabulary, E embedding, H hidden, L layers, G gates, GH = G*H.

The weights are laid out as charrnn's sampler lays them out (charrnn.generate.sampler._prepare),
so the exported step computes what `charrnn sample` computes, in the same order of
operations wherever that order matters:
- layer 0's input part emb[id] W_ih0^T + bias depends on the character only: it is a
  precomputed (V, GH) table when that is no larger than emb and W_ih0 together;
- LSTM/RNN layers k >= 1 use one fused [W_ih | W_hh] (GH, 2H) over [h_{k-1} | h_k],
  which sit next to each other in the state; biases are folded (b_ih + b_hh);
- GRU: b_hr, b_hz ride with the input part, b_hn with the recurrent part (r scales it).
int8 (--int8): every matrix row r is stored as round(W[r] / s_r) with s_r = max|W[r]|/127
(the table and the embedding by rows too); biases, state and sums stay float.
"""
import json
import re

import numpy as np

from charrnn.export import c_program as _c_program
from charrnn.export import c_runtime as rt
from charrnn.errors import ConfigError, ExportError

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_INT_MAX = 2**31 - 1        # C int indexes every array


def _table_pays(V, E, GH):
    """Is the (V, GH) layer-0 table no larger than emb (V, E) plus W_ih0 (GH, E)?"""
    return V * GH <= V * E + GH * E


def prepared(model):
    """(table or None, emb, layers, Wd, bd) as charrnn's sampler prepares them, with the
    table only where it pays for itself (it is also the sampler's, bit for bit)."""
    from charrnn.generate.sampler import _prepare
    c = model.cfg
    GH = model.shapes["rnn.weight_hh_l0"][0]
    limit = c.vocab_size * GH if _table_pays(c.vocab_size, c.embed, GH) else 0
    emb, table, layers, Wd, bd = _prepare(c.cell, c.layers, model.params, limit)
    return table, emb, layers, Wd, bd


def quantize_rows(W):
    """Per-row int8: (q (rows, cols) int8, s (rows,) float32) with W ~= s[:, None] * q."""
    W = np.asarray(W, np.float64)
    s = np.abs(W).max(axis=1) / 127.0
    safe = np.where(s > 0, s, 1.0)
    q = np.clip(np.rint(W / safe[:, None]), -127, 127).astype(np.int8)
    return q, s.astype(np.float32)


def _floats(a):
    # 9 significant digits give back every float32 exactly; the exponent makes each one
    # a floating constant even when it is a whole number.
    return np.char.mod("%.8ef", np.asarray(a, np.float32).ravel().astype(np.float64))


def _array(ctype, name, values, comment, per_line):
    values = list(values)
    lines = [", ".join(values[i:i + per_line]) for i in range(0, len(values), per_line)]
    body = ",\n    ".join(lines)
    return f"/* {comment} */\nstatic const {ctype} {name}[{len(values)}] = {{\n    {body}\n}};\n"


class _Emitter:
    """Collects the weight arrays; returns each matrix's C expression of type cr_mat."""

    def __init__(self, int8):
        self.int8, self.parts, self.flash = int8, [], 0

    def vector(self, name, a, comment):
        name = f"cr_A_{name}"
        self.parts.append(_array("float", name, _floats(a), comment, 6))
        self.flash += a.size * 4
        return name

    def matrix(self, name, W, comment):
        if W.size > _INT_MAX:
            raise ExportError(f"{name} has {W.size:,} entries: too large for C int indices")
        if not self.int8:
            return self.vector(name, W, f"{comment}, {W.shape[0]} x {W.shape[1]}, row-major")
        name = f"cr_A_{name}"
        q, s = quantize_rows(W)
        self.parts.append(_array("int8_t", f"{name}_q", map(str, q.ravel().tolist()),
                                 f"{comment}, {W.shape[0]} x {W.shape[1]} int8", 20))
        self.parts.append(_array("float", f"{name}_s", _floats(s),
                                 f"scale of each row of {name}_q", 6))
        self.flash += q.size + s.size * 4
        return f"{{{name}_q, {name}_s}}"


def _step_code(cell, use_table):
    """The body of charrnn_feed: one step of every layer, for this cell."""
    fused = cell != "gru"
    out = ["    int k;"]
    out.append("    /* layer 0: the input part of the pre-activation */")
    if use_table:
        out.append("    cr_row(st->a, cr_table, token, GH_);")
    else:
        out.append("    cr_row(st->x, cr_emb, token, E_);")
        out.append("    memcpy(st->a, cr_bi[0], sizeof st->a);")
        out.append("    cr_mv(st->a, cr_wi[0], st->x, GH_, E_);")
    out.append("    for (k = 0; k < L_; k++) {")
    out.append("        if (k > 0) {")
    out.append("            memcpy(st->a, cr_bi[k], sizeof st->a);")
    if fused:
        out.append("            /* [h_{k-1} | h_k] @ [W_ih | W_hh]^T: adjacent rows of st->h */")
        out.append("            cr_mv(st->a, cr_wi[k], st->h[k - 1], GH_, 2 * H_);")
    else:
        out.append("            cr_mv(st->a, cr_wi[k], st->h[k - 1], GH_, H_);")
    out.append("        }")
    if cell == "gru":
        out.append("        memcpy(st->g, cr_br[k], sizeof st->g);")
        out.append("        cr_mv(st->g, cr_wr[k], st->h[k], GH_, H_);")
        out.append("        cr_cell(st->a, st->g, st->h[k]);")
    else:
        out.append("        if (k == 0) cr_mv(st->a, cr_wr[0], st->h[0], GH_, H_);")
        if cell == "lstm":
            out.append("        cr_cell(st->a, st->c[k], st->h[k]);")
        else:
            out.append("        cr_cell(st->a, st->h[k]);")
    out.append("    }")
    return "\n".join(out)


def check_prefix(prefix):
    """ConfigError unless prefix can begin the public C names (every exporter's --prefix)."""
    if not isinstance(prefix, str) or not _IDENT.match(prefix):
        raise ConfigError(f"prefix must be a C identifier (letters, digits, _), got {prefix!r}")


def renamed(src, prefix):
    """src with charrnn_ / CHARRNN_ as prefix_ / PREFIX_ (check_prefix's prefix)."""
    if prefix == "charrnn":
        return src
    src = re.sub(r"\bcharrnn_", prefix + "_", src)
    # -DCHARRNN_MAIN in the header comment too (no word boundary after -D)
    return re.sub(r"(\b|(?<=-D))CHARRNN_", prefix.upper() + "_", src)


def c_source(model, int8=False, prefix="charrnn"):
    """The C99 text of `model` (a CharRNN). See the header comment it begins with."""
    from charrnn.version import __version__
    check_prefix(prefix)
    c = model.cfg
    cell, L, H, E, V = c.cell, c.layers, c.hidden, c.embed, c.vocab_size
    G = {"lstm": 4, "gru": 3, "rnn": 1}[cell]
    GH = G * H
    table, emb, layers, Wd, bd = prepared(model)
    em = _Emitter(int8)
    nul = "{0, 0}" if int8 else "0"
    if table is not None:
        first = ("cr_table", em.matrix("table", table, "layer 0's input part per character: "
                                                      "emb W_ih0^T + bias"))
    else:
        first = ("cr_emb", em.matrix("emb", emb, "embedding"))
    wi, wr, bi, br = [], [], [], []
    for k, (Wi, Wr, b_i, b_r) in enumerate(layers):
        first_tab = k == 0 and table is not None
        wi.append(nul if first_tab else em.matrix(
            f"wi{k}", Wi, f"layer {k} input weights" + (" [W_ih | W_hh]" if Wr is None else "")))
        wr.append(nul if Wr is None else em.matrix(f"wr{k}", Wr, f"layer {k} recurrent weights"))
        bi.append("0" if first_tab else em.vector(f"bi{k}", b_i, f"layer {k} input-part bias"))
        br.append("0" if b_r is None else em.vector(f"br{k}", b_r, f"layer {k} recurrent-part bias"))
    dec = em.matrix("dec", Wd, "decoder weights")
    em.vector("dec_b", bd, "decoder bias")
    from charrnn.data.text import BYTES, normalize_encoding
    bytes_model = normalize_encoding(c.encoding) == BYTES
    codes = [ord(ch) for ch in model.vocab]
    start = model.vocab.index("\n") if "\n" in model.vocab else 0
    mats = "\n".join(em.parts)
    tables = [f"static const cr_mat cr_wi[L_] = {{{', '.join(wi)}}};",
              f"static const cr_mat cr_wr[L_] = {{{', '.join(wr)}}};",
              f"static const float *const cr_bi[L_] = {{{', '.join(bi)}}};"]
    if cell == "gru":
        tables.append(f"static const float *const cr_br[L_] = {{{', '.join(br)}}};")
    tables.append(f"static const cr_mat {first[0]} = {first[1]};")
    tables.append(f"static const cr_mat cr_decoder = {dec};")
    state_c = ("    float c[CHARRNN_LAYERS][CHARRNN_HIDDEN];   /* LSTM cell states */\n"
               if cell == "lstm" else "")
    state_g = ("    float g[CHARRNN_GATES * CHARRNN_HIDDEN];   /* GRU recurrent part */\n"
               if cell == "gru" else "")
    state_x = ("    float x[CHARRNN_EMBED];                    /* the input's embedding */\n"
               if table is None else "")
    what = f"{cell} {L}x{H}, embedding {E}, vocabulary {V}, {'int8' if int8 else 'float32'} weights"
    vocab_json = json.dumps("".join(model.vocab), ensure_ascii=True)
    config_json = json.dumps(model.config, sort_keys=True)
    src = HEADER.format(what=what, version=__version__, vocab=_comment(vocab_json),
                        config=_comment(config_json), flash=em.flash, cell=cell, L=L, H=H,
                        E=E, V=V, G=G, GH=GH, bytes=int(bytes_model), start=start,
                        state_c=state_c, state_g=state_g, state_x=state_x,
                        int8=int(int8))
    src += "\n#ifndef CHARRNN_DECLARATIONS_ONLY\n#include <string.h>\n"
    src += "\n#define L_ CHARRNN_LAYERS\n#define H_ CHARRNN_HIDDEN\n#define E_ CHARRNN_EMBED\n"
    src += "#define V_ CHARRNN_VOCAB\n#define GH_ (CHARRNN_GATES * CHARRNN_HIDDEN)\n"
    math = rt.MATH if cell != "rnn" else rt.MATH.replace(rt.SIGMOID, "")
    src += math + (rt.MATVEC_I8 if int8 else rt.MATVEC_F32)
    src += "\n/* ---- weights " + "-" * 70 + " */\n\n" + mats + "\n" + "\n".join(tables) + "\n"
    src += _array("uint32_t", "charrnn_vocab_codes", map(str, codes),
                  "the vocabulary: code point (byte, for byte-level models) of each id", 12)
    src += "const uint32_t *const charrnn_vocab = charrnn_vocab_codes;\n"
    src += rt.CELLS[cell]
    src += BODY.format(step=_step_code(cell, table is not None))
    src += rt.SAMPLER + _c_program.MAIN + "\n#endif /* CHARRNN_DECLARATIONS_ONLY */\n"
    return renamed(src, prefix)


def _comment(text):
    return text.replace("*/", "*\\/")


HEADER = """\
/* charrnn model: {what}.
 * Exported by charrnn {version}; one self-contained C99 file, no dependency beyond the C
 * library, no malloc. Weights: {flash} bytes of static const data (flash on an MCU).
 *
 * Use it as a library (declarations below; `#define CHARRNN_DECLARATIONS_ONLY` before
 * including this file gives just those):
 *     static charrnn_state st;   static charrnn_sampler sp;
 *     charrnn_reset(&st);
 *     charrnn_sampler_init(&sp, seed, temperature, top_k, top_p);   (0: off for top_k)
 *     id = prime id;                                  (charrnn_token maps a code point)
 *     for (;;) {{ id = charrnn_sample(&sp, charrnn_step(&st, id)); emit(charrnn_vocab[id]); }}
 * or as a program:  cc -std=c99 -O2 -DCHARRNN_MAIN model.c -lm -o model
 *     ./model --length N --temp T --seed S --prime TEXT [--top-k K] [--top-p P]
 *     ./model --eval FILE     (mean nats/char of FILE, one stream from the zero state)
 * The same seed, options and prime give the text `charrnn sample` gives (see the README,
 * "Export", for when the two can differ).
 *
 * vocabulary: {vocab}
 * config: {config}
 */
#ifndef CHARRNN_MODEL_H
#define CHARRNN_MODEL_H
#include <stdint.h>

#define CHARRNN_CELL "{cell}"
#define CHARRNN_LAYERS {L}
#define CHARRNN_HIDDEN {H}
#define CHARRNN_EMBED {E}
#define CHARRNN_VOCAB {V}
#define CHARRNN_GATES {G}
#define CHARRNN_INT8 {int8}
#define CHARRNN_BYTES {bytes}     /* 1: a byte-level model, the vocabulary is bytes */
#define CHARRNN_START {start}     /* the first input for an empty prime ("\\n" if known) */

/* The model's state, owned by the caller (static or on the stack). */
typedef struct charrnn_state {{
    float h[CHARRNN_LAYERS][CHARRNN_HIDDEN];   /* hidden states, layer by layer */
{state_c}{state_g}{state_x}    float a[CHARRNN_GATES * CHARRNN_HIDDEN];   /* pre-activations */
    float logits[CHARRNN_VOCAB];
}} charrnn_state;

/* A sampler: charrnn's xoshiro256** stream and options, with its scratch. */
typedef struct charrnn_sampler {{
    uint64_t s[4];
    float inv_temp;
    int greedy, top_k;
    double top_p;
    float w[CHARRNN_VOCAB];
    int32_t order[CHARRNN_VOCAB];
}} charrnn_sampler;

/* id -> code point (or byte), CHARRNN_VOCAB entries */
extern const uint32_t *const charrnn_vocab;
/* code point (or byte) -> id, -1 if not in the vocabulary */
int charrnn_token(uint32_t code);
/* zero state */
void charrnn_reset(charrnn_state *st);
/* advance the state by one input id, without computing logits (priming) */
void charrnn_feed(charrnn_state *st, int token);
/* advance by one input id; returns the logits of the next character (in st) */
const float *charrnn_step(charrnn_state *st, int token);
/* seed (splitmix64 -> xoshiro256**, as charrnn), temperature (0: greedy argmax),
 * top_k (0 or >= vocabulary: off), top_p (1: off) */
void charrnn_sampler_init(charrnn_sampler *sp, uint64_t seed, double temperature, int top_k,
                          double top_p);
/* the next id drawn from logits */
int charrnn_sample(charrnn_sampler *sp, const float *logits);
#endif
"""

BODY = """
int charrnn_token(uint32_t code)
{{
    int i;
    for (i = 0; i < V_; i++)
        if (charrnn_vocab_codes[i] == code) return i;
    return -1;
}}

void charrnn_reset(charrnn_state *st) {{ memset(st, 0, sizeof *st); }}

void charrnn_feed(charrnn_state *st, int token)
{{
    if (token < 0 || token >= V_) token = 0;   /* never read outside the tables */
{step}
}}

const float *charrnn_step(charrnn_state *st, int token)
{{
    charrnn_feed(st, token);
    memcpy(st->logits, charrnn_dec_bias_, sizeof st->logits);
    cr_mv(st->logits, cr_decoder, st->h[L_ - 1], V_, H_);
    return st->logits;
}}
""".replace("charrnn_dec_bias_", "cr_A_dec_b")
