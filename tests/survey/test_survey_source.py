"""The survey reads the explained images of the dataset it surveys, not always the first dataset's (issue 21)."""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
from helpers.rundir import explained_run
from sqlalchemy import select
from sqlalchemy.orm import Session

from medattn.rundir import layout
from medattn.survey.create import create_survey
from medattn.survey.render import image_rgb, png_bytes
from medattn.survey.source import read_sample
from medattn.survey.store import Item, make_engine


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


def test_survey_create_of_the_second_dataset_shows_that_datasets_images(tmp_path):
    """End to end: two explained datasets in one store; the survey of the second renders the second's images."""
    root = explained_run(tmp_path / "run", n_images=6, seeds=(0,), dataset="pneu", seed=0)
    other = explained_run(tmp_path / "other", n_images=6, seeds=(0,), dataset="derm", seed=1)
    folder = root / layout.EXPLANATIONS
    shutil.copyfile(other / layout.EXPLANATIONS / layout.SAMPLE, folder / "sample-derm.npz")
    shutil.copytree(other / layout.ARTIFACTS / "derm", root / layout.ARTIFACTS / "derm")
    runs = [pd.read_csv(base / layout.EXPLANATIONS / layout.EXPLAINED_RUNS).assign(sample=f"explanations/{name}")
            for base, name in ((root, layout.SAMPLE), (other, "sample-derm.npz"))]
    pd.concat(runs).to_csv(folder / layout.EXPLAINED_RUNS, index=False)
    images = {}
    for name in (layout.SAMPLE, "sample-derm.npz"):
        with np.load(folder / name) as npz:
            images[name] = dict(zip(npz["ids"].astype(str), npz["images"], strict=True))
    made = create_survey(root, tmp_path / "derm.db", ["gradcam"], 4, dataset="derm")
    with Session(make_engine(tmp_path / "derm.db")) as session:
        items = session.scalars(select(Item)).all()
    assert len(items) == 4
    for item in items:
        shown = (made.images_dir / item.image_file).read_bytes()
        assert shown == png_bytes(image_rgb(images["sample-derm.npz"][item.image_id]))
        assert shown != png_bytes(image_rgb(images[layout.SAMPLE][item.image_id]))  # same id, other dataset
