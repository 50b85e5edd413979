"""What every section builder reads: the run's data, the report settings and the statistics, computed once.

The comparison tables come straight from :func:`medattn.stats.compare_models` (one call per evaluated
split), the per-model summary from :func:`medattn.stats.summarize`, the across-datasets analysis from
:func:`medattn.stats.compare_across_datasets`; builders only format them. Everything is computed lazily
and cached, so a builder that is not registered costs nothing.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import pandas as pd

from medattn.errors import DataError, UserError
from medattn.rundir.metrics import CLASSIFICATION_METRIC_NAMES
from medattn.rundir.reader import RunData
from medattn.stats import CrossDatasetResult, compare_across_datasets, compare_models, summarize
from medattn.stats.resampling import COMPARISON_BOOTSTRAP
from medattn.stats.seed_bootstrap import SeedBootstrap, seed_averaged_bootstrap

DEFAULT_ROPE = 0.01
DEFAULT_ALPHA = 0.05


def _number(value: Any, name: str, default: float, low: float, high: float) -> float:
    """Return ``value`` as a float in [low, high) (``default`` when missing); DataError otherwise."""
    if value is None:
        return default
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise DataError(f"study.json: {name}={value!r} is not a number; e.g. {default}") from None
    if not (low <= number < high) or math.isnan(number):
        raise DataError(f"study.json: {name}={value!r} must lie in [{low}, {high}); e.g. {default}")
    return number


@dataclass(frozen=True)
class ReportSettings:
    """The choices that change the report's numbers; all of them are stated in the methods section."""

    rope: float = DEFAULT_ROPE
    alpha: float = DEFAULT_ALPHA
    split: str = "test"
    primary_metric: str = "balanced_accuracy"
    confidence: float = 0.95
    power: float = 0.8
    equiv_prob: float = 0.95
    n_boot: int = COMPARISON_BOOTSTRAP
    bootstrap_seed: int = 0

    @classmethod
    def from_study(cls, study: dict[str, Any], rope: float | None = None) -> ReportSettings:
        """Return settings from study.json (``rope``, ``alpha``; Dice is the primary metric of a ``task:
        segmentation`` study), with ``rope`` given here taking precedence."""
        if rope is not None and not (0 <= rope < 1):
            raise DataError(f"--rope {rope}: the ROPE half-width is a proportion in [0, 1), e.g. 0.01 for +-1 pp")
        return cls(
            rope=float(rope) if rope is not None else _number(study.get("rope"), "rope", DEFAULT_ROPE, 0, 1),
            alpha=_number(study.get("alpha"), "alpha", DEFAULT_ALPHA, 1e-12, 1),
            primary_metric="dice" if study.get("task") == "segmentation" else "balanced_accuracy",
        )


@dataclass
class ReportContext:
    """The run's data and settings, with the statistics the sections share (computed on first use)."""

    run: RunData
    settings: ReportSettings
    _bootstraps: dict[tuple[str, str, str, str], SeedBootstrap | None] = field(default_factory=dict, repr=False)
    _comparisons: dict[str, pd.DataFrame] = field(default_factory=dict, repr=False)

    @property
    def results(self) -> pd.DataFrame:
        """Return the tidy final-stage results table."""
        return self.run.results

    def comparisons(self, split: str | None = None) -> pd.DataFrame:
        """Return :func:`compare_models`'s table for ``split`` (default: the main test split)."""
        split = split or self.settings.split
        if split not in self._comparisons:
            s = self.settings
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)  # skipped comparisons are reported as missing rows
                self._comparisons[split] = compare_models(
                    self.results, split=split, primary_metric=s.primary_metric, rope=s.rope, alpha=s.alpha,
                    power=s.power, confidence=s.confidence, equiv_prob=s.equiv_prob,
                )
        return self._comparisons[split]

    @cached_property
    def summary(self) -> pd.DataFrame:
        """Return :func:`summarize`'s per (dataset, model, metric) table for the main split."""
        return summarize(self.results, split=self.settings.split)

    def bootstrap(self, dataset: str, model: str, reference: str, split: str | None = None) -> SeedBootstrap | None:
        """Return the seed-averaged test-sample bootstrap of model - reference, None without predictions."""
        split = split or self.settings.split
        if self.settings.primary_metric not in CLASSIFICATION_METRIC_NAMES:
            return None  # a segmentation study's per-image comparison is the segmentation section's
        key = (dataset, model, reference, split)
        if key not in self._bootstraps:
            seeds = sorted(set(self.run.seeds(dataset, model)) & set(self.run.seeds(dataset, reference)))
            pairs = []
            for seed in seeds:
                a = self.run.predictions(dataset, model, seed, split)
                b = self.run.predictions(dataset, reference, seed, split)
                if a is not None and b is not None:
                    pairs.append((a, b))
            try:
                result = seed_averaged_bootstrap(pairs, n_boot=self.settings.n_boot,
                                                 confidence=self.settings.confidence,
                                                 seed=self.settings.bootstrap_seed)
            except UserError as exc:  # inconsistent prediction files: say so, keep building the report
                self.run.missing.append(f"{dataset}: bootstrap of {model} vs {reference} on {split} skipped ({exc})")
                result = None
            self._bootstraps[key] = result
        return self._bootstraps[key]

    @cached_property
    def cross_dataset(self) -> tuple[CrossDatasetResult | None, str]:
        """Return the across-datasets analysis (or None) and a sentence on which models it covers or why not."""
        datasets = self.run.datasets
        if len(datasets) < 2:
            return None, "one dataset only: no across-datasets ranking"
        sub = self.results[(self.results["split"] == self.settings.split)
                           & (self.results["metric"] == self.settings.primary_metric)]
        per_dataset = [set(sub.loc[sub["dataset"] == d, "model"]) for d in datasets]
        common = sorted(set.intersection(*per_dataset))
        if len(common) < 3:
            return None, (f"the Friedman test needs at least 3 models evaluated on every dataset; "
                          f"{len(common)} are ({', '.join(common) or 'none'})")
        result = compare_across_datasets(self.results, split=self.settings.split,
                                         metric=self.settings.primary_metric, alpha=self.settings.alpha,
                                         models=common)
        left_out = sorted(set.union(*per_dataset) - set(common))
        note = f"{len(common)} models on {len(datasets)} datasets"
        if left_out:
            note += f" ({', '.join(left_out)} left out: not evaluated on every dataset)"
        return result, note
