"""Export a classifier (`charrnn train --task classify`) as one self-contained C99 file:
the weights as static const arrays, no malloc, the workspace in a struct the caller owns;
the label probabilities `charrnn classify` gives.

The model is charrnn.nn.classifier's: embedding, the bidirectional stack (c_bidir.py),
pooling ("final": the top layer's forward state after the last character and reverse
state after the first; "mean": the mean of its outputs), a linear layer and a softmax
(in double, as charrnn's predict_proba). Source ids as charrnn.classifier's: 0 unknown,
i + 1 its character i. int8 as c_source.py.
"""
import json

from charrnn.export import c_program
from charrnn.export.c_bidir import CELL, ENCODE, MAX_SOURCE, encoder_tables, implementation, strings
from charrnn.export.c_source import _Emitter, _comment, check_prefix, renamed
from charrnn.nn.shapes import GATES


def c_classifier_source(clf, int8=False, prefix="charrnn"):
    """The C99 text of `clf` (a charrnn.classifier.TextClassifier)."""
    from charrnn.version import __version__
    check_prefix(prefix)
    c, p = clf.model.cfg, clf.model.params
    em = _Emitter(int8)
    tables = encoder_tables(em, p, "rnn.", c.cell, c.layers)
    tables.append(f"static const cr_mat cr_src_emb = "
                  f"{em.matrix('src_emb', p['encoder.weight'], 'embedding')};")
    tables.append(f"static const cr_mat cr_out_w = "
                  f"{em.matrix('out_w', p['decoder.weight'], 'label layer over the pooled features')};")
    tables.append(f"static const float *const cr_out_b = "
                  f"{em.vector('out_b', p['decoder.bias'], 'label bias')};")
    what = (f"{c.cell} {c.layers}x{c.hidden} (bidirectional), {c.pool} pooling, "
            f"{c.classes} labels, {'int8' if int8 else 'float32'} weights")
    src = HEADER.format(what=what, version=__version__, flash=em.flash, config=_comment(
        json.dumps(clf.model.config, sort_keys=True)), cell=c.cell, pool=c.pool, L=c.layers,
        H=c.hidden, E=c.embed, G=GATES[c.cell], V=c.vocab_size, C=c.classes, int8=int(int8),
        max_source=MAX_SOURCE, mean=int(c.pool == "mean"),
        state_c="    float ec[CHARRNN_HIDDEN];   /* the LSTM's cell */\n" if c.cell == "lstm" else "")
    src += implementation(DEFINES, c.cell, int8, em, tables, clf.vocab)
    src += strings("charrnn_labels", [str(lb) for lb in clf.labels], "the labels by class")
    src += "\ntypedef charrnn_clf cr_ws;\n" + CELL[c.cell] + ENCODE + BODY
    src += c_program.CLF_MAIN + "\n#endif /* CHARRNN_DECLARATIONS_ONLY */\n"
    return renamed(src, prefix)


HEADER = """\
/* charrnn classifier: {what}.
 * Exported by charrnn {version}; one self-contained C99 file, no dependency beyond the C
 * library (and libm), no malloc. Weights: {flash} bytes of static const data (flash on
 * an MCU); the workspace (charrnn_clf) is the caller's.
 *
 * Use it as a library (`#define CHARRNN_DECLARATIONS_ONLY` before including this file
 * gives just the declarations below):
 *     static charrnn_clf ws;   int src[64];   double p[CHARRNN_CLASSES];
 *     src[i] = charrnn_source_id(code point of character i);       (0: unknown)
 *     k = charrnn_classify(&ws, src, length, p);   -> charrnn_labels[k], p[k]
 * or as a program:  cc -std=c99 -O2 -DCHARRNN_MAIN model.c -lm -o model
 *     ./model Rossi Müller       (or one text per line on standard input)
 * which writes LABEL<TAB>PROBABILITY<TAB>TEXT, as `charrnn classify` does.
 *
 * config: {config}
 */
#ifndef CHARRNN_CLF_H
#define CHARRNN_CLF_H
#include <stdint.h>

#define CHARRNN_CELL "{cell}"
#define CHARRNN_POOL "{pool}"
#define CHARRNN_LAYERS {L}              /* each bidirectional */
#define CHARRNN_HIDDEN {H}              /* per direction */
#define CHARRNN_EMBED {E}
#define CHARRNN_GATES {G}
#define CHARRNN_VOCAB {V}               /* ids: 0 unknown, then the characters */
#define CHARRNN_CLASSES {C}
#define CHARRNN_POOL_MEAN {mean}
#define CHARRNN_INT8 {int8}
#define CHARRNN_BYTES 0                 /* texts are read as UTF-8 */
#ifndef CHARRNN_MAX_SOURCE
#define CHARRNN_MAX_SOURCE {max_source}     /* longest text the workspace holds */
#endif

/* The workspace, owned by the caller (static: it holds the encoder's outputs). */
typedef struct charrnn_clf {{
    float enc[CHARRNN_LAYERS > 1 ? 2 : 1][CHARRNN_MAX_SOURCE][2 * CHARRNN_HIDDEN];
    float x[CHARRNN_EMBED];
    float a[CHARRNN_GATES * CHARRNN_HIDDEN], g[CHARRNN_GATES * CHARRNN_HIDDEN];
    float eh[CHARRNN_HIDDEN];
    float feat[2 * CHARRNN_HIDDEN];   /* pooled */
    float logits[CHARRNN_CLASSES];
{state_c}}} charrnn_clf;

/* class -> its label (UTF-8), CHARRNN_CLASSES entries */
extern const char *const *const charrnn_labels;
/* code point -> id; 0 (unknown) if the model never saw it */
int charrnn_source_id(uint32_t code);
/* The most probable class of src[0..n) (the first of equals), or -1 if n is not in
 * 1..CHARRNN_MAX_SOURCE. probs: NULL, or CHARRNN_CLASSES probabilities. */
int charrnn_classify(charrnn_clf *ws, const int *src, int n, double *probs);
#endif
"""

DEFINES = """
#define L_ CHARRNN_LAYERS
#define HE_ CHARRNN_HIDDEN
#define C_ (2 * CHARRNN_HIDDEN)
#define E_ CHARRNN_EMBED
#define G_ CHARRNN_GATES
#define VS_ CHARRNN_VOCAB
#define NC_ CHARRNN_CLASSES
"""

BODY = r"""
int charrnn_classify(charrnn_clf *ws, const int *src, int n, double *probs)
{
    const float (*e)[C_];
    int i, j, best = 0;
    if (n < 1 || n > CHARRNN_MAX_SOURCE) return -1;
    e = cr_encode(ws, src, n);
    if (CHARRNN_POOL_MEAN) {   /* the mean of the top layer's outputs */
        memset(ws->feat, 0, sizeof ws->feat);
        for (j = 0; j < n; j++)
            for (i = 0; i < C_; i++) ws->feat[i] += e[j][i];
        for (i = 0; i < C_; i++) ws->feat[i] /= (float)n;
    } else {                   /* forward after the last character, reverse after the first */
        memcpy(ws->feat, e[n - 1], HE_ * sizeof(float));
        memcpy(ws->feat + HE_, e[0] + HE_, HE_ * sizeof(float));
    }
    memcpy(ws->logits, cr_out_b, sizeof ws->logits);
    cr_mv(ws->logits, cr_out_w, ws->feat, NC_, C_);
    for (i = 1; i < NC_; i++)
        if (ws->logits[i] > ws->logits[best]) best = i;
    if (probs) {   /* softmax in double, as charrnn's predict_proba */
        double z = 0;
        for (i = 0; i < NC_; i++) z += (probs[i] = exp((double)ws->logits[i] - ws->logits[best]));
        for (i = 0; i < NC_; i++) probs[i] /= z;
    }
    return best;
}
"""
