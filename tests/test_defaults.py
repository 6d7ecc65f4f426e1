"""charrnn.defaults: the adaptive defaults are a pure, deterministic function of the
corpus size, vocabulary and budget, and explicit options always win."""
import pytest

from charrnn.training import auto as defaults
from charrnn.training.auto import choose

FORMER_FIXED = dict(layers=2, hidden=256, embed=64, dropout=0.1, lr_decay=0.85,
                    batch_size=32, seq_len=64, eval_every=500)
SIZES = [300, 1_000, 5_000, 10_000, 30_000, 100_000, 300_000, 1_115_394, 3_000_000,
         24_000_000, 300_000_000]


def test_bundled_corpus_in_five_minutes_gets_the_former_fixed_defaults():
    c = choose(1_115_394, 65, 5.0)
    assert {k: c.values[k] for k in FORMER_FIXED} == FORMER_FIXED
    assert c.val_chars == 111_539 and c.notes == []
    assert set(c.auto) == set(defaults.AUTO)


def test_same_inputs_same_choice():
    assert choose(123_456, 70, 5.0) == choose(123_456, 70, 5.0)


def test_model_grows_with_the_corpus_and_dropout_falls():
    sizes = [defaults.params("gru", choose(n, 65, 5.0).values["layers"],
                             choose(n, 65, 5.0).values["hidden"],
                             choose(n, 65, 5.0).values["embed"], 65) for n in SIZES]
    drops = [choose(n, 65, 5.0).values["dropout"] for n in SIZES]
    assert sizes == sorted(sizes) and sizes[0] < sizes[-1]
    assert drops[1:] == sorted(drops[1:], reverse=True)
    assert drops[-1] == 0.0 and max(drops) >= 0.3     # one pass: none; hundreds: strong
    # the ends differ from the former fixed defaults
    assert choose(10_000, 60, 5.0).values["hidden"] < 256
    assert choose(24_000_000, 300, 5.0).values["dropout"] == 0.0


def test_a_longer_budget_never_picks_a_smaller_model():
    hidden = [choose(24_000_000, 300, m).values["hidden"] for m in (1, 5, 30, 120)]
    assert hidden == sorted(hidden) and hidden[-1] > hidden[0]
    assert choose(24_000_000, 300, 0).values == choose(24_000_000, 300,
                                                       defaults.UNBOUNDED_MINUTES).values


def test_explicit_options_win_and_are_not_auto():
    given = dict(hidden=512, dropout=0.0, batch_size=3, eval_every=7, patience=0)
    c = choose(10_000, 60, 5.0, given=given)
    assert {k: c.values[k] for k in given} == given
    assert not set(given) & set(c.auto)
    # the rest still adapts to the model the user chose
    assert c.values["layers"] == choose(10_000, 60, 5.0).values["layers"]


@pytest.mark.parametrize("n", [2, 50, 300, 999, 2_000, 5_000, 17_000])
def test_automatic_batch_and_window_fit_the_training_part(n):
    c = choose(n, 10, 5.0)
    v = c.values
    n_train = n - c.val_chars
    assert v["batch_size"] * (v["seq_len"] + 1) <= n_train
    assert v["batch_size"] >= 1 and v["seq_len"] >= 1


def test_too_little_text_trains_without_validation_and_says_so():
    c = choose(300, 30, 5.0)
    assert c.val_chars == 0 and c.values["patience"] == 0 and c.values["val_frac"] == 0
    assert c.values["max_epochs"] == defaults.NO_VAL_MAX_EPOCHS
    assert any("without validation" in n for n in c.notes)
    assert choose(5_000, 30, 5.0).val_chars == 500


def test_shrinking_says_so_and_never_touches_explicit_values():
    c = choose(300, 30, 5.0, given={"batch_size": 8})
    assert c.values["batch_size"] == 8 and c.values["seq_len"] == 300 // 8 - 1
    assert any("cannot fill 8 streams of 65" in n for n in c.notes)
    # both explicit and too large: left as given, for Batches to refuse clearly
    c = choose(300, 30, 5.0, given={"batch_size": 50, "seq_len": 64})
    assert (c.values["batch_size"], c.values["seq_len"]) == (50, 64)


def test_evaluations_are_frequent_on_small_held_out_parts_only():
    assert choose(10_000, 60, 5.0).values["eval_every"] < 50
    assert choose(1_115_394, 65, 5.0).values["eval_every"] == 500
    assert choose(24_000_000, 300, 5.0).values["eval_every"] == 500
    # early stopping where the budget sees the text many times, not in one pass
    assert choose(100_000, 60, 5.0).values["patience"] > 0
    assert choose(24_000_000, 300, 5.0).values["patience"] == 0


def test_params_counts_the_model():
    from charrnn.model import CharRNN
    for cell in ("gru", "lstm", "rnn"):
        m = CharRNN(dict(cell=cell, hidden=12, layers=2, embed=5, vocab_size=9), list("abcdefghi"))
        assert defaults.params(cell, 2, 12, 5, 9) == m.flat.size


def test_describe_names_the_choice():
    text = defaults.describe(choose(10_000, 60, 5.0))
    assert "1x128 GRU" in text and "dropout 0.3" in text and "patience" in text
    assert "GRU" not in defaults.describe(choose(10_000, 60, 5.0, given=dict(
        hidden=64, layers=1, embed=8)))


def test_an_explicit_val_frac_validates_whatever_it_can_score():
    assert choose(780, 13, 5.0, given={"val_frac": 0.1}).val_chars == 78
    assert choose(780, 13, 5.0).val_chars == 0               # auto: too few to be worth it
    c = choose(780, 13, 5.0, given={"val_frac": 0.0})        # recorded by a run without
    assert c.val_chars == 0 and c.notes == []                # validation: resumes as one
