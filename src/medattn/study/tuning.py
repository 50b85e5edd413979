"""The tuning stage's Optuna pieces: the sampler and pruner a spec names, and sampling a trial's parameters.

Samplers are seeded by (spec seed, trial number), so a trial is reproducible alone and parallel workers
draw different values; pruners treat epochs as steps.
"""

from __future__ import annotations

from typing import Any

import optuna

from medattn.study.plan import Plan
from medattn.study.spec import ParamSpec


def tuning_keys(plan: Plan) -> list[int]:
    """Slot keys of a tuning study."""
    return list(range(plan.spec.tuning.trials))


def suggest(trial: optuna.Trial, space: dict[str, ParamSpec]) -> dict[str, Any]:
    """Sample (or, for a retried trial, re-read) every search-space parameter of a trial."""
    params: dict[str, Any] = {}
    for name, p in space.items():
        if p.type == "categorical":
            params[name] = trial.suggest_categorical(name, p.choices)
        elif p.type == "int":
            params[name] = trial.suggest_int(name, int(p.low), int(p.high), step=int(p.step or 1), log=p.log)
        else:
            params[name] = trial.suggest_float(name, p.low, p.high, step=p.step, log=p.log)
    return params


def make_pruner(plan: Plan) -> optuna.pruners.BasePruner:
    """The Optuna pruner the spec names (epochs are the pruning steps)."""
    p = plan.spec.tuning.pruner
    if p.type == "median":
        # steps are 1-based epochs and Optuna prunes from step n_warmup_steps on: protect epochs 1..warmup
        return optuna.pruners.MedianPruner(n_startup_trials=p.startup_trials, n_warmup_steps=p.warmup_epochs + 1)
    if p.type == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=p.min_epochs, max_resource=plan.spec.tuning_epochs,
                                              reduction_factor=p.reduction_factor)
    if p.type == "successive_halving":  # asynchronous successive halving: a trial continues past epoch
        # min_epochs * factor**k only if it ranks in the top 1/factor of the trials that reached that epoch
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=p.min_epochs, reduction_factor=p.reduction_factor)
    return optuna.pruners.NopPruner()


def make_sampler(plan: Plan, trial_number: int) -> optuna.samplers.BaseSampler:
    """A sampler seeded by (spec seed, trial number): reproducible alone, distinct across parallel workers."""
    t = plan.spec.tuning
    seed = t.seed * 1_000_003 + trial_number
    if t.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=t.startup_trials, constant_liar=True)
