"""The methods paragraph: exactly what was run and tested, in sentences that can be pasted into a paper.

Facts come from the results table (datasets, models, seeds, splits, Holm family sizes) and from
study.json (tuning budget, search space, pruner, selection metric, training settings). Everything that
study.json does not record is said to be unrecorded rather than guessed.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import Any

from medattn.report import formatting as fmt
from medattn.report.context import ReportContext
from medattn.report.document import Paragraph, Section
from medattn.report.formatting import metric_label
from medattn.rundir.columns import model_role
from medattn.stats.compare import VS_BEST_BASELINE, reference_baselines


def _version() -> str:
    """Return the installed medattn version ('unknown' when not installed as a package)."""
    try:
        return version("medattn")
    except PackageNotFoundError:
        return "unknown"


_OPTIMIZERS = {"adamw": "AdamW", "sgd": "SGD with momentum", "adam": "Adam"}


def _join(items: list[str]) -> str:
    """Return 'a', 'a and b' or 'a, b and c'."""
    if len(items) < 2:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def _num(x: Any) -> str:
    """Return a search-space bound compactly (1e-04 style below 0.001)."""
    v = float(x)
    return f"{v:.0e}" if v != 0 and abs(v) < 1e-3 else f"{v:g}"


def describe_parameter(name: str, spec: Any) -> str:
    """Return one search-space dimension in words, e.g. 'lr log-uniform in [1e-04, 0.01]'."""
    if not isinstance(spec, dict):
        return f"{name} ({spec})"
    if spec.get("choices") is not None:
        return f"{name} one of {{{', '.join(str(c) for c in spec['choices'])}}}"
    if spec.get("low") is None or spec.get("high") is None:
        return name
    kind = "integer " if spec.get("type") == "int" else ""
    scale = "log-uniform" if spec.get("log") else "uniform"
    step = f" in steps of {_num(spec['step'])}" if spec.get("step") else ""
    return f"{name} {kind}{scale} in [{_num(spec['low'])}, {_num(spec['high'])}]{step}"


def describe_pruner(pruner: Any) -> str:
    """Return the tuning pruner in words (a name, or a mapping with ``type`` and options)."""
    if pruner is None:
        return "pruner not recorded"
    spec = pruner if isinstance(pruner, dict) else {"type": str(pruner)}
    kind = str(spec.get("type", "median")).lower()
    if kind in ("none", "nop", "null"):
        return "no pruning"
    if kind == "median":
        opts = []
        if spec.get("startup_trials") is not None:
            opts.append(f"after {spec['startup_trials']} completed trials")
        if spec.get("warmup_epochs") is not None:
            opts.append(f"never in the first {spec['warmup_epochs']} epoch(s)")
        return "median pruning" + (f" ({', '.join(opts)})" if opts else "")
    if kind == "hyperband":
        opts = []
        if spec.get("min_epochs") is not None:
            opts.append(f"minimum {spec['min_epochs']} epoch(s)")
        if spec.get("reduction_factor") is not None:
            opts.append(f"reduction factor {spec['reduction_factor']}")
        return "Hyperband pruning" + (f" ({', '.join(opts)})" if opts else "")
    return f"{kind} pruning"


def design_paragraph(ctx: ReportContext) -> str:
    """Return the sentences naming the datasets and models."""
    r = ctx.results
    datasets = []
    for d in ctx.run.datasets:
        spec = ctx.run.dataset_spec(d)
        datasets.append(d + (f" ({spec})" if spec and spec != d else ""))
    roles = r.groupby("model")[["backbone", "attention", "is_baseline"]].first()
    placement = r.groupby("model")["placement"].first() if "placement" in r.columns else None
    models = []
    for model, row in roles.iterrows():
        kind = model_role(bool(row["is_baseline"]), str(row["attention"]))
        if kind == "attention":
            where = placement.get(model) if placement is not None else None
            text = f"{model} ({row['backbone']} with {row['attention']} attention"
            text += f", placement {where})" if isinstance(where, str) and where else ")"
        elif kind == "plain":
            text = f"{model} (plain {row['backbone']})"
        else:
            text = f"{model} (baseline {row['backbone']})"
        models.append(text)
    return (f"We compared {len(models)} models, {_join(models)}, on {len(datasets)} dataset(s): "
            f"{_join(datasets)}.")


def tuning_paragraph(ctx: ReportContext) -> str:
    """Return the sentences on the tuning budget, search space, pruner and selection metric."""
    study = ctx.run.study
    tuning = study.get("tuning")
    train = study.get("train") if isinstance(study.get("train"), dict) else {}
    if not isinstance(tuning, dict):
        return ("The tuning budget and search space were not recorded (no study.json with a `tuning` entry in the "
                "run directory); the hyperparameters each model was retrained with are listed per dataset.")
    selection = "dice" if study.get("task") == "segmentation" else study.get("selection_metric")
    metric = tuning.get("metric") or selection or "balanced_accuracy"
    trials = tuning.get("trials")
    epochs = tuning.get("max_epochs") or train.get("epochs")
    sampler = str(tuning.get("sampler") or "").lower()
    sampler_text = {"tpe": "Optuna's TPE sampler", "random": "random search"}.get(sampler, "Optuna")
    seed = tuning.get("seed")
    space = tuning.get("search_space") or {}
    if trials == 0:
        return ("No hyperparameter tuning was run (0 trials): every model used the shared training settings.")
    text = (f"Every model was tuned separately on each dataset with the same budget: "
            f"{trials if trials is not None else 'an unrecorded number of'} trials of {sampler_text}"
            f"{f' (seed {seed})' if seed is not None else ''}")
    text += f", each of at most {epochs} epochs" if epochs else ""
    text += f", with {describe_pruner(tuning.get('pruner'))}"
    if space:
        text += ", over " + _join([describe_parameter(n, p) for n, p in space.items()])
    text += (f". The trial with the best validation {metric_label(metric)} gave the configuration that was "
             "retrained for the final runs.")
    return text


def training_paragraph(ctx: ReportContext) -> str:
    """Return the sentences on the final runs: seeds, training settings, evaluated splits."""
    r = ctx.results
    study = ctx.run.study
    train = study.get("train") if isinstance(study.get("train"), dict) else {}
    seeds = sorted(r["seed"].unique())
    per_run = r.groupby(["dataset", "model"])["seed"].nunique()
    seeds_text = f"{per_run.max()} seeds ({', '.join(str(s) for s in seeds)})"
    if per_run.min() != per_run.max():
        seeds_text = f"{per_run.min()} to {per_run.max()} seeds (seed values {', '.join(str(s) for s in seeds)})"
    text = f"Each tuned configuration was retrained with {seeds_text}"
    details = []
    if train.get("epochs"):
        details.append(f"for up to {train['epochs']} epochs")
    if train.get("optimizer"):
        details.append(f"with {_OPTIMIZERS.get(str(train['optimizer']).lower(), str(train['optimizer']))}")
    if train.get("batch_size"):
        details.append(f"batch size {train['batch_size']}")
    if train.get("early_stop_patience"):
        details.append(f"early stopping after {train['early_stop_patience']} epochs without improvement")
    augment = train.get("augment")
    if isinstance(augment, dict):
        details.append("on-device augmentation" if augment.get("enabled", True) else "no augmentation")
    if details:
        text += " " + ", ".join(details)
    splits = sorted(set(r["split"]) - {"val"}, key=lambda x: (x != ctx.settings.split, x))
    kept = "Dice" if study.get("task") == "segmentation" else "balanced accuracy"
    text += (f", keeping the checkpoint of the epoch with the best validation {kept}, and evaluated on "
             f"the {_join(splits)} split(s). Per-class recall and confusion matrices pool the predictions of all "
             "seeds.")
    return text


def _bootstrapped(ctx: ReportContext) -> bool:
    """Return True when at least one comparison has a test-set bootstrap interval (prediction files found)."""
    table = ctx.comparisons()
    if table.empty:
        return False
    rows = table[table["metric"] == ctx.settings.primary_metric]
    return any(ctx.bootstrap(d, m, r) is not None for d, m, r in zip(rows["dataset"], rows["model"],
                                                                     rows["reference"], strict=True))


def statistics_paragraph(ctx: ReportContext) -> str:
    """Return the sentences on the tests, corrections, ROPE, bootstrap and rank analysis."""
    s = ctx.settings
    table = ctx.comparisons()
    level = f"{100 * s.confidence:g}%"
    primary = metric_label(s.primary_metric)
    has_baseline = not table.empty and (table["kind"] == VS_BEST_BASELINE).any()
    text = "Each attention variant was compared with its plain backbone"
    if has_baseline:
        fell_back = sorted(set(reference_baselines(ctx.results, split=s.split, metric=s.primary_metric)[1]))
        text += (f", and each non-baseline model with the best baseline (highest mean {primary} on the val split, "
                 "so that the test noise that decides the comparison does not also choose the reference; run-to-run "
                 "quality that also shows on validation can still favour it, so a loss against it is somewhat "
                 "liberal")
        text += (f"; for {_join(fell_back)}, which had no validation results, on the {s.split} split, a choice "
                 "that favours the baseline)" if fell_back else ")")
    text += (f", on every dataset and metric, paired by seed (difference = model - reference). We report the mean "
             f"difference with its {level} t confidence interval over seeds (not adjusted for multiple comparisons), "
             "the two-sided paired t test (the exact sign-flip p when all differences are equal, which leaves the "
             "t test and the posterior undefined) and the exact Wilcoxon signed-rank test (which cannot reach "
             "p < 0.05 with fewer than 6 seeds), Cohen's d_z, and the minimum detectable difference of the paired "
             f"t test at {100 * s.power:g}% power and alpha/m (alpha = {s.alpha:g}, m = the size of the Holm family, "
             "Holm's first step), computed from the observed spread of the seeds. The t p-values were corrected "
             "with Holm's method within each metric and split")
    if not table.empty:
        m = int((table["metric"] == s.primary_metric).sum())
        text += f" ({m} {primary} comparison{'s' if m != 1 else ''} on {s.split})"
    text += (f". A Bayesian paired comparison (Student t posterior of the mean difference, as in baycomp's "
             f"correlated t test with correlation 0 between seeds) gives the probabilities that the difference is "
             f"below, inside or above a region of practical equivalence (ROPE) of +-{fmt.pct(s.rope)} pp. A "
             f"difference is called significant when the Holm-adjusted p < {s.alpha:g}: a significant gain or loss "
             f"when moreover P(better) or P(worse) >= {s.equiv_prob:g} (larger than the ROPE), significant but "
             f"negligible when P(equivalent) >= {s.equiv_prob:g}, and of unclear size otherwise; a difference that "
             f"is not significant is practically equivalent when P(equivalent) >= {s.equiv_prob:g} and "
             "inconclusive otherwise. The seed intervals, p-values and posterior probabilities describe training "
             "noise (seed-to-seed variation) on this split and test set; ")
    text += ("test-set sampling noise enters only the test bootstrap interval." if _bootstrapped(ctx) else
             "test-set sampling noise is not part of them (and was not estimated: no per-sample predictions).")
    if _bootstrapped(ctx):
        text += (f" Test-set sampling noise was estimated with a class-stratified paired bootstrap over test samples "
                 f"({s.n_boot} "
                 f"resamples, seed {s.bootstrap_seed}, each resample shared by all seeds; {level} percentile interval "
                 f"of the seed-averaged {primary} difference).")
    cross, _ = ctx.cross_dataset
    if cross is not None:
        text += (f" Across datasets, models were ranked on each dataset by mean {primary} and compared with the "
                 f"Friedman test (tie-corrected and uncorrected, each with the Iman-Davenport F) and the Nemenyi "
                 f"post-hoc test (critical difference at "
                 f"alpha = {cross.alpha:g}; Demsar 2006).")
    extra = sorted({sp for d in ctx.run.datasets for sp in ctx.run.extra_splits(d)})
    if extra:
        text += (f" On the out-of-distribution split(s) {_join(extra)} the comparisons were repeated (Holm within "
                 f"each split), and each model's gap to {s.split} was tested with a paired t test over seeds.")
    return text


def methods_sections(ctx: ReportContext) -> list[Section]:
    """Return the 'Methods' section: design, tuning, final runs and statistics, one paragraph each."""
    return [Section("Methods", [
        Paragraph(design_paragraph(ctx)),
        Paragraph(tuning_paragraph(ctx)),
        Paragraph(training_paragraph(ctx)),
        Paragraph(statistics_paragraph(ctx)),
        Paragraph(f"Software: medattn {_version()} (statistics from scipy, statsmodels, baycomp and "
                  "scikit-posthocs)."),
    ])]
