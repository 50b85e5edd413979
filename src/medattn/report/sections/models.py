"""The per-model part of a dataset's section: mean ± sd of every metric with the model's costs, the
selected hyperparameters, and accuracy against cost with the Pareto front.

Training throughput comes from the runs themselves (``run_train_images_per_s``: images over training seconds of
each seeded run), as the median with its min-max over seeds. Inference throughput, and training throughput of
runs that did not record their own, come from the separate timing of ``medattn.models.cost`` (a few short rounds,
once per model, while the machine may be busy with other runs) and are labelled so; where both exist, the caption
says how far that timing strayed from the runs' own median (on Derm7pt it gave ResNet-18 6.3 img/s against 57 in
its runs).
"""

from __future__ import annotations

import pandas as pd

from medattn.report import formatting as fmt
from medattn.report.context import ReportContext
from medattn.report.document import FigureBlock, Paragraph, Section, Table, slugify
from medattn.report.figures import accuracy_cost_figure, pareto_front
from medattn.report.formatting import metric_label
from medattn.rundir.columns import COST_COLUMNS, model_role
from medattn.rundir.metrics import METRIC_NAMES, higher_is_better, metric_unit

SUMMARY_METRICS: tuple[str, ...] = tuple(m for m in METRIC_NAMES if m != "accuracy")
COST_LABELS: dict[str, str] = {
    "params": "Params",
    "flops": "FLOPs",
    "train_images_per_s": "Train img/s (separate timing)",
    "infer_images_per_s": "Infer img/s (separate timing)",
    "run_train_images_per_s": "Train img/s (runs)",
    "peak_memory_mb": "Peak mem (MB)",
}
RUN_SPEED = "run_train_images_per_s"  # the run's own training throughput (results column)
SEPARATE_SPEED = "train_images_per_s"  # the separate timing of training (medattn.models.cost)
FIGURE_COSTS: dict[str, str] = {"params": "parameters", "flops": "FLOPs per image"}


def _rate(value: object) -> str:
    """Return images per second: no decimals from 10 up, one below."""
    v = fmt.number(value, 1)
    return v if v == fmt.NA or abs(float(value)) < 10 else fmt.number(value, 0)


def _cost_cell(column: str, value: object) -> str:
    """Return a formatted cost value."""
    if column in ("params", "flops"):
        return fmt.si(value)
    return _rate(value) if column.endswith("images_per_s") else fmt.number(value, 0)


def run_speeds(results: pd.DataFrame, dataset: str) -> pd.DataFrame:
    """Return per model the runs' own training images/s over its seeds: runs, median, low (min), high (max)."""
    if RUN_SPEED not in results.columns:
        return pd.DataFrame(columns=["runs", "median", "low", "high"])
    r = results[results["dataset"] == dataset].dropna(subset=[RUN_SPEED]).drop_duplicates(["model", "seed"])
    return r.groupby("model")[RUN_SPEED].agg(runs="count", median="median", low="min", high="max")


def _speed_cell(speeds: pd.DataFrame, model: str) -> str:
    """Return 'median (min-max)' of a model's run throughputs (the median alone for one run)."""
    if model not in speeds.index:
        return fmt.NA
    s = speeds.loc[model]
    return _rate(s["median"]) if s["runs"] == 1 else f"{_rate(s['median'])} ({_rate(s['low'])}–{_rate(s['high'])})"


def _speed_note(s: pd.DataFrame, speeds: pd.DataFrame, separate: list[str]) -> str:
    """Return the caption's sentence on where the throughput columns come from."""
    notes = []
    if len(speeds):
        notes.append("Train img/s (runs): each seeded run's own training throughput, median (min–max) over seeds.")
    if separate:
        note = (f"{' and '.join(COST_LABELS[c].split(' (')[0] for c in separate)}: a separate timing (a few short "
                "rounds, once per model, while the machine may run other work)")
        if len(speeds) and SEPARATE_SPEED in s.columns:
            ratio = (s.groupby("model")[SEPARATE_SPEED].first() / speeds["median"]).dropna()
            if len(ratio):
                note += (f"; the same timing of training was {ratio.min():.2g}–{ratio.max():.2g}x the runs' own median "
                         "across these models, so compare it between models with care")
        notes.append(note + ".")
    return " ".join(notes)


def summary_table(ctx: ReportContext, dataset: str) -> Table | None:
    """Return per model: role, seeds, mean ± sd (%) of the summary metrics and the cost columns."""
    s = ctx.summary[ctx.summary["dataset"] == dataset]
    if s.empty:
        return None
    metrics = [m for m in SUMMARY_METRICS if m in set(s["metric"])]
    speeds = run_speeds(ctx.results, dataset)
    present = {c for c in COST_COLUMNS if c in s.columns and s[c].notna().any()}
    if len(speeds):  # the runs' own throughput takes the place of the separate timing of training
        present = (present - {SEPARATE_SPEED}) | {RUN_SPEED}
    costs = [c for c in (RUN_SPEED if len(speeds) and c == SEPARATE_SPEED else c for c in COST_COLUMNS)
             if c in present]
    separate = [c for c in costs if c in (SEPARATE_SPEED, "infer_images_per_s")]
    means = s.pivot_table(index="model", columns="metric", values="mean", aggfunc="first")
    best = {m: (means[m].idxmax() if higher_is_better(m) else means[m].idxmin())
            for m in metrics if means[m].notna().any()}
    rows = []
    for model in ctx.run.models(dataset):
        m_rows = s[s["model"] == model]
        if m_rows.empty:
            continue
        first = m_rows.iloc[0]
        cells = [model, model_role(bool(first["is_baseline"]), str(first["attention"])), str(int(m_rows["n"].max()))]
        for metric in metrics:
            hit = m_rows[m_rows["metric"] == metric]
            text = fmt.NA if hit.empty else fmt.mean_sd(hit["mean"].iloc[0], hit["std"].iloc[0],
                                                         percent=metric_unit(metric) == "%")
            cells.append(f"**{text}**" if best.get(metric) == model else text)
        cells += [_speed_cell(speeds, model) if c == RUN_SPEED else _cost_cell(c, first[c]) for c in costs]
        rows.append(tuple(cells))
    columns = ("Model", "Role", "Seeds", *(f"{metric_label(m, capital=True)} ({metric_unit(m)})" for m in metrics),
               *(COST_LABELS[c] for c in costs))
    return Table(
        columns=columns,
        rows=tuple(rows),
        align=("l", "l", *("r",) * (len(columns) - 2)),
        caption=f"Mean ± sd over seeds on {ctx.settings.split} (bold: best mean; for ECE lower is better), "
                "with each model's cost (FLOPs per image, throughput in images per second). "
                + _speed_note(s, speeds, separate),
    )


def hyperparameter_table(ctx: ReportContext, dataset: str) -> Table | None:
    """Return the tuned hyperparameters (``hp_`` columns) each model was retrained with."""
    r = ctx.results[ctx.results["dataset"] == dataset]
    cols = [c for c in r.columns if c.startswith("hp_") and r[c].notna().any()]
    if not cols:
        return None
    rows = []
    for model in ctx.run.models(dataset):
        per_seed = r[r["model"] == model].drop_duplicates("seed")
        cells = [model]
        for col in cols:
            values = per_seed[col].dropna().unique()
            cells.append(fmt.NA if len(values) == 0 else fmt.hp_value(values[0]) if len(values) == 1 else "varies")
        rows.append(tuple(cells))
    return Table(
        columns=("Model", *(c[3:] for c in cols)),
        rows=tuple(rows),
        align=("l", *("r",) * len(cols)),
        caption="Hyperparameters selected by tuning (the same for every seed of a model).",
    )


def models_section(ctx: ReportContext, dataset: str) -> Section | None:
    """Return the 'Models' subsection: the summary table and the selected hyperparameters."""
    blocks = [t for t in (summary_table(ctx, dataset), hyperparameter_table(ctx, dataset)) if t is not None]
    return Section("Models", list(blocks)) if blocks else None


def cost_section(ctx: ReportContext, dataset: str) -> Section | None:
    """Return the accuracy-vs-cost subsection: one figure per recorded cost, its Pareto-optimal models named."""
    s = ctx.summary
    s = s[(s["dataset"] == dataset) & (s["metric"] == ctx.settings.primary_metric)].reset_index(drop=True)
    costs = [c for c in FIGURE_COSTS if c in s.columns and s[c].notna().any()]
    if s.empty or not higher_is_better(ctx.settings.primary_metric):
        return None
    if not costs:
        return Section("Accuracy vs cost", [Paragraph("No cost measurements (params, FLOPs) in the results.")])
    section = Section("Accuracy vs cost")
    label = metric_label(ctx.settings.primary_metric)
    for cost in costs:
        front = s.loc[pareto_front(s, cost, "mean"), "model"].tolist()
        fig = accuracy_cost_figure(s, cost_col=cost, acc_col="mean", err_col="std", label_col="model",
                                   title=f"{dataset}: {label} vs {FIGURE_COSTS[cost]}")
        ax = fig.axes[0]
        ax.set_ylabel(f"{label} (mean over seeds)")
        section.add(
            FigureBlock(slugify(f"{dataset}-accuracy-vs-{cost}"), fig,
                        f"Mean {label} on {ctx.settings.split} (bars: sd over seeds) against {FIGURE_COSTS[cost]}; "
                        "dashed: the Pareto front."),
            Paragraph(f"Pareto-optimal in {FIGURE_COSTS[cost]} (no other model is both cheaper and more accurate): "
                      + ", ".join(f"`{m}`" for m in front) + "."),
        )
    return section
