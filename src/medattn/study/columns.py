"""The columns of the tidy results table a study writes: the contract that stats and report read.

One row per run x split x metric: the identifying columns, then one ``hp_<name>`` column per search-space
parameter, the model's cost (measured once per dataset and model by :mod:`medattn.models.cost`), and
facts about the run (epochs, throughput, artifact paths relative to the run directory).
"""

from __future__ import annotations

ID_COLUMNS: tuple[str, ...] = (
    "study", "dataset", "dataset_spec", "model", "backbone", "attention", "placement", "placement_config",
    "is_baseline", "reference", "stage", "seed", "trial", "status", "split", "metric", "value",
)
COST_COLUMNS: tuple[str, ...] = ("params", "flops", "train_images_per_s", "infer_images_per_s", "peak_memory_mb")
RUN_COLUMNS: tuple[str, ...] = (
    "best_epoch", "epochs_run", "run_train_seconds", "run_train_images_per_s", "run_precision", "run_stem",
    "tuned_from", "checkpoint",
    "predictions", "artifact_dir", "worker",
)
