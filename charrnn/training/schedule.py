"""The learning-rate schedule of a run: decay per epoch, and the final anneal.

    scheduled_lr(cfg, epochs, step, anneal_steps, anneal_from) -> lr
    budget_end(cfg, step, per_epoch, elapsed, step_time, eval_cost) -> step or None
    anneal_window(cfg, step, end, anneal_from) -> (start, end, from) or None
    plateau_window(cfg, step, end, bad_evals) -> (start, end, 1.0) or None

The anneal is a window (start, end[, from]) of steps in which the lr falls linearly from
`from` (1 unless a resume changed the budget mid-anneal) to a tenth, and stays there. A
run fixes it once and saves it, so that a resumed run anneals identically. It starts
when the run is (1 - --anneal) through its first budget to run out, or, for the tasks
that ask for it (classifiers, transducers), when the validation loss has stopped
improving: there, patience would otherwise stop a run that never lowered its lr.
"""
import math

FLOOR = 0.1   # the lr factor at the end of an anneal


def scheduled_lr(c, epochs, step, anneal_steps, anneal_from):
    """c.lr * c.lr_decay^epochs, times the anneal factor once annealing has started (or
    the factor a resume changed the budget at)."""
    lr = c.lr * c.lr_decay ** epochs
    if anneal_steps is not None:
        return lr * anneal_factor(anneal_steps, step)
    return lr if anneal_from is None else lr * anneal_from


def anneal_factor(window, step):
    """The lr factor at `step` of the anneal window (start, end[, from])."""
    start, end, *rest = window
    f0 = rest[0] if rest else 1.0
    frac = min(1.0, max(0, step - start) / max(1, end - start))
    return f0 - (f0 - FLOOR) * frac


def budget_end(c, step, per_epoch, elapsed, step_time, eval_cost):
    """The step at which the first budget runs out, or None without one: --max-steps
    and --max-epochs are exact; --max-minutes is estimated from the measured speed (each
    step costs its own time and a 1/eval_every share of an evaluation; the last
    evaluation, at the end, is kept aside as stop_reason does)."""
    ends = []
    if c.max_steps:
        ends.append(c.max_steps)
    if c.max_epochs:
        ends.append(math.ceil(c.max_epochs * per_epoch))
    if c.max_minutes and step_time:
        left = c.max_minutes * 60 - elapsed - eval_cost
        per_step = step_time + eval_cost / c.eval_every
        ends.append(step + int(max(0.0, left) / per_step))
    return min(ends) if ends else None


def anneal_window(c, step, end, anneal_from):
    """The window to fix now that the run is (1 - c.anneal) through a budget ending at
    `end` (or a resume changed the budget mid-anneal), else None."""
    if not c.anneal or end is None:
        return None
    if step >= (1 - c.anneal) * end or anneal_from is not None:
        return (step, max(end, step + 1), anneal_from or 1.0)
    return None


def plateau_window(c, step, end, bad_evals):
    """The window to start now because half of --patience's evaluations (at least two)
    passed without a better validation loss, else None. It lasts a fifth of the steps so
    far, at least one patience's worth of evaluations, and ends with the budget if that
    comes first. (The caller then restarts the patience count, so that patience judges
    the annealed model.)"""
    if not (c.anneal and c.patience) or bad_evals < max(2, c.patience // 2):
        return None
    stop = step + max(c.patience * c.eval_every, step // 5)
    return (step, max(step + 1, min(stop, end) if end is not None else stop), 1.0)
