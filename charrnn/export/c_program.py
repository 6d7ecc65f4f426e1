"""The optional program in an exported C file (compiled with -DCHARRNN_MAIN): charrnn
sample's options on top of the library API, and --eval for a text file's loss; for a
transducer (S2S_MAIN) or a classifier (CLF_MAIN), each TEXT or line of standard input
and its output or label.

It reads the prime as charrnn.generate.sampler does: its last character is the first input, the
others only warm the state up, an empty prime starts on CHARRNN_START, and the output is
the prime, the generated characters and a newline. Errors are one line on stderr with exit
status 2 (bad arguments) or 1 (files).
"""

HEAD = r"""
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static const char *cr_prog = "model";

static void cr_die(int code, const char *what, const char *arg)
{
    fprintf(stderr, "%s: %s%s\n", cr_prog, what, arg ? arg : "");
    exit(code);
}

/* Next code point of a UTF-8 string (advancing *p), or -1 if the bytes are not UTF-8.
 * Byte-level models take the bytes themselves. */
static long cr_utf8(const unsigned char **p)
{
    const unsigned char *s = *p;
    long c;
    int n, i;
    if (CHARRNN_BYTES || s[0] < 0x80) { *p = s + 1; return s[0]; }
    if ((s[0] & 0xe0) == 0xc0) { n = 1; c = s[0] & 0x1f; }
    else if ((s[0] & 0xf0) == 0xe0) { n = 2; c = s[0] & 0x0f; }
    else if ((s[0] & 0xf8) == 0xf0) { n = 3; c = s[0] & 0x07; }
    else return -1;
    for (i = 1; i <= n; i++) {
        if ((s[i] & 0xc0) != 0x80) return -1;
        c = (c << 6) | (s[i] & 0x3f);
    }
    *p = s + n + 1;
    return c;
}
"""

# The language model's program: HEAD, then sampling and --eval.
MAIN = "\n#ifdef CHARRNN_MAIN" + HEAD + r"""
static void cr_put(int id)
{
    uint32_t c = charrnn_vocab[id];
    unsigned char b[4];
    int n = 1;
    if (CHARRNN_BYTES || c < 0x80) b[0] = (unsigned char)c;
    else if (c < 0x800) { b[0] = (unsigned char)(0xc0 | (c >> 6)); n = 2; }
    else if (c < 0x10000) { b[0] = (unsigned char)(0xe0 | (c >> 12)); n = 3; }
    else { b[0] = (unsigned char)(0xf0 | (c >> 18)); n = 4; }
    if (n >= 2) {
        int i;
        for (i = 1; i < n; i++)
            b[i] = (unsigned char)(0x80 | ((c >> (6 * (n - 1 - i))) & 0x3f));
    }
    fwrite(b, 1, (size_t)n, stdout);
}

static double cr_number(const char *opt, const char *s, double lo, double hi)
{
    char *end;
    double v;
    errno = 0;
    v = strtod(s, &end);
    if (!*s || *end || errno || !(v >= lo && v <= hi)) {
        fprintf(stderr, "%s: bad value for %s: '%s' (a number in [%g, %g])\n", cr_prog, opt,
                s, lo, hi);
        exit(2);
    }
    return v;
}

/* Mean cross-entropy (nats/char) of predicting each character of the file from the ones
 * before it, one stream from the zero state: the validation loss of the export. */
static void cr_eval(charrnn_state *st, const char *path)
{
    FILE *f = fopen(path, "rb");
    unsigned char buf[8];
    long prev = -1, count = 0;
    double total = 0;
    int c;
    if (!f) cr_die(1, "cannot open --eval file ", path);
    while ((c = getc(f)) != EOF) {
        const unsigned char *p = buf;
        long code;
        int id, n = 1, i;
        buf[0] = (unsigned char)c;
        if (!CHARRNN_BYTES && c >= 0xc0)
            n = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : 2;
        for (i = 1; i < n; i++) {
            int d = getc(f);
            buf[i] = (unsigned char)(d == EOF ? 0 : d);
        }
        buf[n] = 0;
        code = cr_utf8(&p);
        id = code < 0 ? -1 : charrnn_token((uint32_t)code);
        if (id < 0) cr_die(1, "a character of the --eval file is not in the vocabulary: ", path);
        if (prev >= 0) {
            const float *z = charrnn_step(st, (int)prev);
            double m = z[0], s = 0;
            int j;
            for (j = 1; j < CHARRNN_VOCAB; j++) m = z[j] > m ? z[j] : m;
            for (j = 0; j < CHARRNN_VOCAB; j++) s += exp(z[j] - m);
            total += log(s) - (z[id] - m);
            count++;
        }
        prev = id;
    }
    fclose(f);
    if (count == 0) cr_die(1, "the --eval file needs at least 2 characters: ", path);
    printf("loss %.6f nats/char over %ld characters\n", total / count, count);
}

int main(int argc, char **argv)
{
    static charrnn_state st;
    static charrnn_sampler sp;
    const char *prime = "", *eval = NULL;
    double temp = 1.0, top_p = 1.0;
    long length = 2000, n, top_k = 0;
    uint64_t seed = (uint64_t)time(NULL);
    int i, cur = CHARRNN_START, have = 0;
    const unsigned char *p;
    cr_prog = argv[0];
    for (i = 1; i < argc; i++) {
        const char *o = argv[i];
        if (!strcmp(o, "-h") || !strcmp(o, "--help")) {
            printf("usage: %s [--length N] [--temp T] [--seed S] [--prime TEXT] [--top-k K] "
                   "[--top-p P] [--eval FILE]\n  --eval FILE: mean nats/char of FILE (UTF-8; bytes for a byte-level model)\n", cr_prog);
            return 0;
        }
        if (i + 1 >= argc) cr_die(2, "missing value or unknown option: ", o);
        if (!strcmp(o, "--length")) length = (long)cr_number(o, argv[++i], 0, 2e9);
        else if (!strcmp(o, "--temp")) temp = cr_number(o, argv[++i], 0, 1e300);
        else if (!strcmp(o, "--top-k")) top_k = (long)cr_number(o, argv[++i], 1, 2e9);
        else if (!strcmp(o, "--top-p")) top_p = cr_number(o, argv[++i], 1e-300, 1);
        else if (!strcmp(o, "--prime")) prime = argv[++i];
        else if (!strcmp(o, "--eval")) eval = argv[++i];
        else if (!strcmp(o, "--seed")) {
            const char *s = argv[++i];
            char *end;
            errno = 0;
            seed = (uint64_t)strtoull(s, &end, 10);
            if (!*s || *s == '-' || *end || errno) cr_die(2, "bad value for --seed (0 to 2^64-1): ", s);
        } else cr_die(2, "unknown option: ", o);
    }
    charrnn_reset(&st);
    if (eval) { cr_eval(&st, eval); return 0; }
    charrnn_sampler_init(&sp, seed, temp, (int)top_k, top_p);
    /* as charrnn sample: read the prime, its last character is the first input */
    for (p = (const unsigned char *)prime; *p;) {
        long c = cr_utf8(&p);
        int id = c < 0 ? -1 : charrnn_token((uint32_t)c);
        if (c < 0) cr_die(2, "--prime is not valid UTF-8", NULL);
        if (id < 0) cr_die(2, "a character of --prime is not in the model's vocabulary: ", prime);
        if (have) charrnn_feed(&st, cur);
        cur = id;
        have = 1;
    }
    fputs(prime, stdout);
    for (n = 0; n < length; n++) {
        cur = charrnn_sample(&sp, charrnn_step(&st, cur));
        cr_put(cur);
    }
    putchar('\n');
    return fflush(stdout) == 0 ? 0 : 1;
}
#endif
"""


# A transducer's or a classifier's program: HEAD, then cr_read (a text to source ids),
# the model's cr_text (one text's line), then TEXTS_MAIN (TEXTs or standard input's lines).
# Placeholders: @WS@ the workspace type, @FLAG@ the option cr_text's flag is set by,
# @USAGE@ what a line holds, @FLAGHELP@ what the option adds.
READ = r"""
/* src[0..*n) of text; 0 (one line on stderr) if it is not UTF-8 or longer than
 * CHARRNN_MAX_SOURCE characters. */
static int cr_read(const char *text, int *src, int *n)
{
    const unsigned char *p = (const unsigned char *)text;
    *n = 0;
    while (*p) {
        long code = cr_utf8(&p);
        if (code < 0) { fprintf(stderr, "%s: not valid UTF-8: %s\n", cr_prog, text); return 0; }
        if (*n == CHARRNN_MAX_SOURCE) {
            fprintf(stderr, "%s: longer than %d characters (compile with a larger "
                    "-DCHARRNN_MAX_SOURCE): %s\n", cr_prog, CHARRNN_MAX_SOURCE, text);
            return 0;
        }
        src[(*n)++] = charrnn_source_id((uint32_t)code);
    }
    return 1;
}
"""

TEXTS_MAIN = r"""
int main(int argc, char **argv)
{
    static @WS@ ws;
    static char buf[8 * CHARRNN_MAX_SOURCE + 8];
    int i, flag = 0, texts = 0, ok = 1;
    cr_prog = argv[0];
    for (i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            printf("usage: %s [@FLAG@] [TEXT]...\n  each TEXT (or each line of standard "
                   "input): @USAGE@\n  @FLAG@: @FLAGHELP@\n", cr_prog);
            return 0;
        }
        if (!strcmp(argv[i], "@FLAG@")) flag = 1;
        else if (argv[i][0] == '-' && argv[i][1] == '-') cr_die(2, "unknown option: ", argv[i]);
    }
    for (i = 1; i < argc; i++)
        if (strcmp(argv[i], "@FLAG@")) {
            texts++;
            if (!*argv[i]) cr_die(2, "an empty TEXT", NULL);
            ok &= cr_text(&ws, argv[i], flag);
        }
    while (!texts && fgets(buf, sizeof buf, stdin)) {
        size_t len = strlen(buf);
        if (len + 1 == sizeof buf && buf[len - 1] != '\n') {
            int ch;
            fprintf(stderr, "%s: a line longer than %d characters (compile with a larger "
                    "-DCHARRNN_MAX_SOURCE)\n", cr_prog, CHARRNN_MAX_SOURCE);
            while ((ch = getchar()) != EOF && ch != '\n') {}
            ok = 0;
            continue;
        }
        while (len && (buf[len - 1] == '\n' || buf[len - 1] == '\r')) buf[--len] = 0;
        if (len) ok &= cr_text(&ws, buf, flag);
    }
    return fflush(stdout) == 0 && ok ? 0 : 1;
}
#endif
"""

S2S_MAIN = "\n#ifdef CHARRNN_MAIN" + HEAD + READ + r"""
/* TEXT<TAB>OUTPUT[<TAB>LOG-PROBABILITY] */
static int cr_text(charrnn_s2s *ws, const char *text, int scores)
{
    static int src[CHARRNN_MAX_SOURCE], out[CHARRNN_MAX_OUTPUT];
    double lp;
    int n, k, i;
    if (!cr_read(text, src, &n)) return 0;
    k = charrnn_transduce(ws, src, n, out, CHARRNN_MAX_OUTPUT, &lp);
    fputs(text, stdout);
    putchar('\t');
    for (i = 0; i < k; i++) {
        if (i && CHARRNN_TARGET_WORDS) putchar(' ');
        fputs(charrnn_target_tokens[out[i]], stdout);
    }
    if (scores) printf("\t%.6f", lp);
    putchar('\n');
    return 1;
}
""" + TEXTS_MAIN.replace("@WS@", "charrnn_s2s").replace("@FLAG@", "--scores").replace(
    "@USAGE@", "it and its output, tab-separated").replace(
    "@FLAGHELP@", "and the output's log-probability")

CLF_MAIN = "\n#ifdef CHARRNN_MAIN" + HEAD + READ + r"""
/* LABEL<TAB>PROBABILITY<TAB>TEXT, as charrnn classify; with --all every label, best first */
static int cr_text(charrnn_clf *ws, const char *text, int all)
{
    static int src[CHARRNN_MAX_SOURCE];
    static double p[CHARRNN_CLASSES];
    static char used[CHARRNN_CLASSES];
    int n, i, k, shown;
    if (!cr_read(text, src, &n)) return 0;
    k = charrnn_classify(ws, src, n, p);
    memset(used, 0, sizeof used);
    for (shown = 0; shown < (all ? CHARRNN_CLASSES : 1); shown++) {
        if (shown) {   /* the next best: the first of equals, as a stable sort */
            for (k = -1, i = 0; i < CHARRNN_CLASSES; i++)
                if (!used[i] && (k < 0 || p[i] > p[k])) k = i;
        }
        used[k] = 1;
        printf("%s%s\t%.6f", shown ? "\t" : "", charrnn_labels[k], p[k]);
    }
    printf("\t%s\n", text);
    return 1;
}
""" + TEXTS_MAIN.replace("@WS@", "charrnn_clf").replace("@FLAG@", "--all").replace(
    "@USAGE@", "its label, the label's probability and it, tab-separated").replace(
    "@FLAGHELP@", "every label with its probability, best first")
