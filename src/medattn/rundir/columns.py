"""The tidy results table: one row per run x split x metric, its columns, their types and the model roles.

Written by ``medattn study run`` / ``study results`` and by ``medattn train --out``; read by stats, report,
explain, features and probes (through :mod:`medattn.rundir.reader`). After the identifying columns come one
``hp_<name>`` column per search-space parameter, the model's cost (measured once per dataset and model),
and facts about the run. Paths are relative to the run directory.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Column:
    """One column of results.csv: name, pandas dtype, what it holds."""

    name: str
    dtype: str
    description: str


ID: tuple[Column, ...] = (
    Column("study", "string", "the study's name"),
    Column("dataset", "string", "the dataset's short name"),
    Column("dataset_spec", "string", "the loader spec string the dataset is reloaded from (kind:target?k=v)"),
    Column("model", "string", "the model's name (unique in the study)"),
    Column("backbone", "string", "the backbone (see `medattn models list`)"),
    Column("attention", "string", "the attention mechanism, 'none' for a plain model"),
    Column("placement", "string", "the placement's name"),
    Column("placement_config", "string", "the placement as JSON (empty: the mechanism's default)"),
    Column("is_baseline", "bool", "a reference model (compared as the best baseline, never as a variant)"),
    Column("reference", "string", "the plain model this attention variant is compared with (the contrast plan)"),
    Column("stage", "string", "final (seeded runs) or tune (tuning trials)"),
    Column("seed", "Int64", "the run's seed"),
    Column("trial", "Int64", "the Optuna trial number"),
    Column("status", "string", "ok or failed"),
    Column("split", "string", "the evaluated split (val, test, test_*)"),
    Column("metric", "string", "the metric's name (see METRICS)"),
    Column("value", "float64", "the score; empty when missing"),
)
COST: tuple[Column, ...] = (
    Column("params", "Int64", "trainable parameters"),
    Column("flops", "float64", "forward FLOPs per image"),
    Column("train_images_per_s", "float64", "separately timed training throughput"),
    Column("infer_images_per_s", "float64", "separately timed inference throughput"),
    Column("peak_memory_mb", "float64", "peak training memory"),
)
RUN: tuple[Column, ...] = (
    Column("best_epoch", "Int64", "the epoch whose weights were kept (best validation selection metric)"),
    Column("epochs_run", "Int64", "epochs trained (early stopping may end a run before its budget)"),
    Column("run_train_seconds", "float64", "the run's own training time"),
    Column("run_train_images_per_s", "float64", "the run's own training throughput"),
    Column("run_precision", "string", "autocast precision the run trained in"),
    Column("run_stem", "string", "the stem the model was built with"),
    Column("tuned_from", "Int64", "the tuning trial whose hyperparameters the run used"),
    Column("checkpoint", "string", "the run's model.safetensors, relative to the run directory"),
    Column("predictions", "string", "the run's predictions on this split, relative to the run directory"),
    Column("artifact_dir", "string", "the run's artifact folder, relative to the run directory"),
    Column("worker", "string", "the worker that ran it"),
)
RESULT_COLUMNS: tuple[Column, ...] = (*ID, *COST, *RUN)
"""Every fixed column, in file order; the ``hp_<name>`` columns sit between ID and COST."""

ID_COLUMNS: tuple[str, ...] = tuple(c.name for c in ID)
COST_COLUMNS: tuple[str, ...] = tuple(c.name for c in COST)
RUN_COLUMNS: tuple[str, ...] = tuple(c.name for c in RUN)
PATH_COLUMNS: tuple[str, ...] = ("checkpoint", "predictions", "artifact_dir", "run_dir")
REQUIRED_COLUMNS: tuple[str, ...] = (
    "dataset", "model", "backbone", "attention", "is_baseline", "seed", "split", "metric", "value",
)
ROLES: tuple[str, ...] = ("baseline", "plain", "attention")  # the order models are listed in


def hp_column(name: str) -> str:
    """Return the results column of search-space parameter ``name`` (dots become underscores)."""
    return "hp_" + name.replace(".", "_")


def model_role(is_baseline: bool, attention: str) -> str:
    """Return 'baseline' (a reference model), 'plain' (a backbone without attention) or 'attention' (a variant)."""
    return "baseline" if is_baseline else ("plain" if attention == "none" else "attention")
