"""The sanity checks of the report's explanation section (Adebayo et al., "Sanity Checks for Saliency Maps",
NeurIPS 2018): model-parameter randomisation (whole model), data randomisation (a model trained on permuted
labels) when the store has it, and the cascading randomisation curve (Quantus' MPRT, top down, per stage).

A method is flagged by `medattn.explain.randomisation.flag_interval` (the lower bound of the 95 % t-interval of
the mean per-image Spearman above 0.5), not by its mean; on a grid coarser than min_grid the check is stated as
underpowered rather than passed. Not a section: `explanations.py` places the blocks.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from medattn.explain.randomisation import FLAG_ABOVE
from medattn.explain.summary import CASCADE_PREFIX, cascade_curves, randomisation_checks
from medattn.report.document import BulletList, FigureBlock, Paragraph, Table
from medattn.report.formatting import NA

CHECK_NAMES = {"randomisation_spearman": "model randomisation", "data_randomisation_spearman": "data randomisation"}
RULE = (f"Flag rule: a method fails a randomisation check when the 95 % t-interval of its mean per-image Spearman ρ "
        f"(trained model's maps vs the randomised one's) lies entirely above {FLAG_ABOVE}: its maps keep more than "
        "half their rank order without what the model learnt. A method with ρ = 1 on every image is flagged from "
        "2 images on; on a grid coarser than min_grid two unrelated maps already correlate by chance (sd of ρ "
        "about 1/sqrt(g²-1), 0.58 at 2×2), so the check is called underpowered there instead of passed.")


def _num(x: float) -> str:
    return NA if not np.isfinite(x) else f"{x:.2f}"


def check_name(metric: str) -> str:
    """'model randomisation', 'data randomisation' or 'cascade, all stages random (to <stage>)'."""
    if metric.startswith(CASCADE_PREFIX):
        return f"cascade, all random (down to {metric[len(CASCADE_PREFIX):]})"
    return CHECK_NAMES.get(metric, metric)


def _verdict(r, min_grid: int) -> str:
    if r.flagged:
        return "**flagged**: maps barely depend on " + ("the labels" if r.metric.startswith("data") else
                                                          "the learnt weights")
    if r.underpowered:
        return f"underpowered ({r.grid}×{r.grid} grid < min_grid {min_grid})"
    if r.images < 2:
        return "not enough images"
    if r.mean > FLAG_ABOVE:
        return f"inconclusive: mean above {FLAG_ABOVE}, interval reaches below it"
    return "not flagged"


def check_table(checks: pd.DataFrame, min_grid: int) -> Table:
    """One row per model, method and check: mean ρ, the interval's lower bound and the verdict."""
    rows = tuple((r.model, r.method, f"{r.layer} ({r.grid}×{r.grid})" if r.grid else r.layer or "—",
                  check_name(r.metric), str(r.images), _num(r.mean), _num(r.lower),
                  _verdict(r, min_grid)) for r in checks.itertuples())
    return Table(("model", "method", "layer (grid)", "check", "images", "mean ρ", "95 % lower bound", "result"),
                 rows, align=("l", "l", "l", "l", "r", "r", "r", "l"),
                 caption="Randomisation checks, maps for the predicted class: Spearman ρ per image between the "
                         "trained model's map and the map of a freshly initialised model (model randomisation), of "
                         "the model with every stage re-initialised top down (cascade, all random; first seed), or "
                         "of a model trained on permuted labels (data randomisation), seed-averaged; lower is "
                         "better.")


def flagged_sentences(checks: pd.DataFrame) -> list[str]:
    """One sentence per flagged (model, method, check)."""
    return [f"{r.model} / {r.method}: fails the {check_name(r.metric)} check (mean ρ = "
            f"{r.mean:.2f}, 95 % lower bound {r.lower:.2f} > {FLAG_ABOVE}): its maps do not show what this model "
            "learnt." for r in checks[checks["flagged"]].itertuples()]


def cascade_figure(curves: pd.DataFrame) -> Figure:
    """One panel per model: mean ρ after each cascade step (top layer first), one line and CI band per method."""
    models = list(dict.fromkeys(curves["model"]))
    colours = {m: f"C{i}" for i, m in enumerate(dict.fromkeys(curves["method"]))}  # one colour per method
    fig = Figure(figsize=(3.4 * len(models) + 0.4, 3.0), layout="constrained")
    axes = fig.subplots(1, len(models), squeeze=False, sharey=True)[0]
    for ax, model in zip(axes, models, strict=True):
        sub = curves[curves["model"] == model]
        for method, block in sub.groupby("method", sort=False):
            block = block.sort_values("position")
            x = np.arange(len(block))
            ax.plot(x, block["mean"], marker="o", ms=3.5, label=method, color=colours[method])
            ax.fill_between(x, block["ci_low"], block["ci_high"], alpha=0.2, color=colours[method])
            ax.set_xticks(x, block["stage"], rotation=45, ha="right", fontsize=7)
        ax.axhline(FLAG_ABOVE, color="#cf222e", ls="--", lw=0.8)
        ax.axhline(0, color="#59636e", lw=0.6)
        ax.set_ylim(-1.05, 1.05)
        ax.set_title(model, fontsize=8)
        ax.tick_params(labelsize=7)
        ax.set_xlabel("randomised down to (cumulative)", fontsize=7)
    axes[0].set_ylabel("Spearman ρ vs trained maps", fontsize=7)
    handles = [Line2D([], [], color=c, marker="o", ms=3.5, label=m) for m, c in colours.items()]
    fig.legend(handles=handles, loc="outside right upper", fontsize=7, frameon=False)
    return fig


def cascade_table(curves: pd.DataFrame) -> Table:
    """The curve as numbers: one row per model and method, one column per stage in cascade order."""
    stages = list(dict.fromkeys(curves.sort_values("position", kind="stable")["stage"]))
    lookup = {(r.model, r.method, r.stage): r for r in curves.itertuples()}
    rows = []
    for (model, method), _ in curves.groupby(["model", "method"], sort=False):
        cells = []
        for stage in stages:
            r = lookup.get((model, method, stage))
            cells.append(NA if r is None or not np.isfinite(r.mean) else
                         f"{r.mean:.2f}" + (f" [{r.ci_low:.2f}, {r.ci_high:.2f}]" if np.isfinite(r.ci_low) else ""))
        rows.append((model, method, *cells))
    return Table(("model", "method", *stages), tuple(rows), align=("l", "l", *("r" * len(stages))),
                 caption="Cascading randomisation (first seed of each model): mean ρ [95 % CI over images] after "
                         "the named stage and every stage above it are re-initialised (Quantus MPRT, top down).")


def _in_model_order(table: pd.DataFrame, models: list[str]) -> pd.DataFrame:
    rank = {m: i for i, m in enumerate(models)}
    return table.sort_values("model", key=lambda s: s.map(lambda m: rank.get(m, len(rank))), kind="stable")


def randomisation_blocks(scores: pd.DataFrame, dataset: str, models: list[str], min_grid: int,
                         confidence: float = 0.95) -> list:
    """The randomisation table, flagged sentences (or a clear statement of what passed) and the cascade curve."""
    checks = _in_model_order(randomisation_checks(scores, min_grid, confidence), models)
    curves = _in_model_order(cascade_curves(scores, confidence), models)
    if checks.empty and curves.empty:
        return []
    blocks = [Paragraph("Sanity checks (Adebayo et al. 2018). " + RULE)]
    if not checks.empty:
        blocks.append(check_table(checks, min_grid))
        flagged = flagged_sentences(checks)
        if flagged:
            blocks.append(BulletList(tuple(flagged)))
        else:
            weak = checks[checks["underpowered"] | (checks["images"] < 2)]
            unclear = checks[~checks["underpowered"] & (checks["images"] >= 2) & (checks["mean"] > FLAG_ABOVE)]
            blocks.append(Paragraph(
                "No method is flagged." + (" The checks marked underpowered cannot show that the maps depend on the "
                                           "model: they neither pass nor fail." if not weak.empty else "")
                + (f" {len(unclear)} check(s) have a mean above {FLAG_ABOVE} with an interval too wide to decide: "
                   "more images would." if not unclear.empty else "")))
        if "data_randomisation_spearman" not in set(checks["metric"]):
            blocks.append(Paragraph("Data randomisation (a model trained on permuted labels) was not computed for "
                                    "this store."))
    if not curves.empty:
        blocks.append(FigureBlock(f"explanations-{dataset}-cascade", cascade_figure(curves),
                                  "Cascading randomisation: mean Spearman ρ (band: 95 % CI over images) between the "
                                  "trained model's maps and the maps after re-initialising the layers from the top "
                                  f"down to the named stage; dashed red: the flag threshold {FLAG_ABOVE}. A curve "
                                  "that stays high while the top layers are random shows maps that do not depend on "
                                  "what those layers learnt."))
        blocks.append(cascade_table(curves))
    return blocks
