"""The survey reads the explained images of the dataset it surveys, not always the first dataset's (issue 21)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from medattn.survey.source import read_sample


def _store(run_dir):
    """An explanation store of two datasets: a (first, sample.npz) and b (sample-b.npz), with distinct ids."""
    folder = run_dir / "explanations"
    folder.mkdir(parents=True)
    for name, ids in (("sample.npz", ["a0", "a1"]), ("sample-b.npz", ["b0", "b1", "b2"])):
        np.savez(folder / name, ids=np.array(ids), images=np.zeros((len(ids), 1, 4, 4), np.uint8),
                 labels=np.arange(len(ids)), split=np.array("test"), seed=np.int64(0))
    pd.DataFrame([{"dataset": d, "model": "resnet18", "backbone": "resnet18", "attention": "none", "seed": 0,
                   "run_dir": f"artifacts/{d}/resnet18/seed0-trial0",
                   "maps": f"artifacts/{d}/resnet18/seed0-trial0/explanations/maps.npz",
                   "sample": f"explanations/{sample}"}
                  for d, sample in (("a", "sample.npz"), ("b", "sample-b.npz"))]).to_csv(folder / "runs.csv",
                                                                                          index=False)


def test_a_survey_of_the_second_dataset_reads_its_own_images(tmp_path):
    _store(tmp_path)
    assert read_sample(tmp_path, "b").ids.tolist() == ["b0", "b1", "b2"]
    assert read_sample(tmp_path, "a").ids.tolist() == ["a0", "a1"]
    assert read_sample(tmp_path).ids.tolist() == ["a0", "a1"]
