"""The automatic options of a transducer run (charrnn.training.auto.choose_seq2seq): the
model grows with the pairs and with the budget; options the user gives win."""
from charrnn.training import auto


def choose(n, minutes, **given):
    return auto.choose_seq2seq(n, 12, minutes, given, held_out=lambda frac: int(n * frac))


def test_the_default_five_minutes_keep_the_small_model_however_many_pairs():
    v = choose(120_000, 5).values
    assert (v["layers"], v["hidden"], v["embed"], v["batch_size"]) == (1, 128, 32, 32)


def test_a_longer_budget_grows_the_model_only_with_enough_pairs():
    sizes = {m: choose(120_000, m).values["hidden"] for m in (5, 10, 29, 30, 60, 120, 0)}
    assert sizes == {5: 128, 10: 128, 29: 128, 30: 256, 60: 256, 120: 256, 0: 256}
    assert choose(60_000, 60).values["hidden"] == 192       # 54k training pairs
    assert choose(30_000, 60).values["hidden"] == 128
    assert choose(5_000, 60).values["hidden"] == 64
    big = choose(120_000, 0).values
    assert (big["layers"], big["embed"], big["batch_size"]) == (2, 64, 64)
    assert choose(120_000, 30).values["layers"] == 2                  # 2x256: measured
    assert choose(60_000, 60).values["layers"] == 1


def test_given_options_win_and_are_not_listed_as_automatic():
    c = choose(120_000, 30, hidden=96, batch_size=16)
    assert c.values["hidden"] == 96 and c.values["batch_size"] == 16
    assert "hidden" not in c.auto and "batch_size" not in c.auto and "embed" in c.auto


def test_a_tiny_set_takes_a_batch_of_a_quarter_of_its_pairs():
    # 100 pairs are too few to hold 10 out (20 at least): all 100 train
    assert choose(100, 30).values["batch_size"] == 25
    assert choose(400, 30).values["batch_size"] == 32


def test_classifiers_are_unchanged():
    c = auto.choose_classifier(120_000, 12, 30, {}, held_out=lambda f: int(120_000 * f))
    assert (c.values["hidden"], c.values["embed"], c.values["batch_size"]) == (128, 32, 32)


def test_a_transducer_anneals_across_its_budget_unless_told():
    c = choose(120_000, 30)
    assert c.values["anneal"] == auto.S2S_ANNEAL == 0.9 and "anneal" in c.auto
    assert c.values["dropout"] == auto.S2S_DROPOUT == 0.25 and "dropout" in c.auto
    assert choose(120_000, 5).values["dropout"] == 0.0                  # 1x128: none
    assert choose(120_000, 5, hidden=256).values["dropout"] == 0.25     # by the size used
    assert choose(60_000, 60).values["dropout"] == 0.25                 # 1x192
    told = choose(120_000, 30, anneal=0.3, dropout=0.0)
    assert told.values["anneal"] == 0.3 and told.values["dropout"] == 0.0
    assert "anneal" not in told.auto and "dropout" not in told.auto
    lm = auto.choose(1_000_000, 65, 5)
    clf = auto.choose_classifier(120_000, 12, 30, {}, held_out=lambda f: int(120_000 * f))
    assert lm.values["anneal"] == clf.values["anneal"] == auto.ANNEAL == 0.2


def test_a_transducer_smooths_its_labels_unless_told():
    c = choose(120_000, 30)
    assert c.values["label_smoothing"] == auto.S2S_LABEL_SMOOTHING > 0
    assert "label_smoothing" in c.auto and choose(500, 5).values["label_smoothing"] == 0.1
    told = choose(120_000, 30, label_smoothing=0.0)
    assert told.values["label_smoothing"] == 0.0 and "label_smoothing" not in told.auto
    clf = auto.choose_classifier(120_000, 12, 30, {}, held_out=lambda f: int(120_000 * f))
    lm = auto.choose(1_000_000, 65, 5)
    assert clf.values["label_smoothing"] == lm.values["label_smoothing"] == 0.0


def test_the_log_line_names_the_transducer_anneal_and_any_dropout():
    line = auto.describe_classifier(choose(120_000, 30))
    assert "lr annealed over the last 90% of the budget" in line and "dropout 0.25" in line
    assert "dropout" not in auto.describe_classifier(choose(120_000, 5))
    clf = auto.choose_classifier(120_000, 12, 30, {}, held_out=lambda f: int(120_000 * f))
    assert "annealed" not in auto.describe_classifier(clf) and "dropout" not in auto.describe_classifier(clf)


def test_a_transducer_with_a_time_budget_has_no_early_stopping_unless_told():
    assert choose(120_000, 30).values["patience"] == 0
    assert choose(120_000, 0).values["patience"] == auto.PATIENCE    # no budget: patience
    assert choose(120_000, 30, patience=4).values["patience"] == 4
    clf = auto.choose_classifier(120_000, 12, 30, {}, held_out=lambda f: int(120_000 * f))
    assert clf.values["patience"] == auto.PATIENCE


def test_a_large_set_holds_out_what_an_evaluation_scores_not_a_tenth():
    from charrnn.training.seq2seq_run import EVAL_PAIRS
    c = choose(120_000, 30)
    assert 2_900 <= c.val_chars <= 3_100 and c.values["val_frac"] == 0.025 and "val_frac" in c.auto
    assert auto.S2S_VAL_PAIRS >= EVAL_PAIRS          # every evaluation's loss sample fits
    assert choose(20_000, 30).values["val_frac"] == auto.VAL_FRAC      # 2,000: a tenth
    assert choose(30_000, 30).val_chars == 3_000
    told = choose(120_000, 30, val_frac=0.1)
    assert told.values["val_frac"] == 0.1 and told.val_chars == 12_000 and "val_frac" not in told.auto
    clf = auto.choose_classifier(120_000, 12, 30, {}, held_out=lambda f: int(120_000 * f))
    assert clf.values["val_frac"] == auto.VAL_FRAC                      # classifiers: a tenth


def test_a_transducer_clips_the_gradient_norm_at_one_unless_told():
    c = choose(120_000, 30)
    assert c.values["grad_clip"] == auto.S2S_GRAD_CLIP == 1.0 and "grad_clip" in c.auto
    assert "gradient norm clipped at 1" in auto.describe_classifier(c)
    told = choose(120_000, 30, grad_clip=5.0)
    assert told.values["grad_clip"] == 5.0 and "grad_clip" not in told.auto
    assert "clipped" not in auto.describe_classifier(told)
    clf = auto.choose_classifier(120_000, 12, 30, {}, held_out=lambda f: int(120_000 * f))
    lm = auto.choose(1_000_000, 65, 5)
    assert clf.values["grad_clip"] == lm.values["grad_clip"] == auto.GRAD_CLIP == 5.0
    assert "clipped" not in auto.describe_classifier(clf) + auto.describe(lm)
