"""``medattn survey create``: choose arms and items from a run's stored maps, render the panels, write the survey.

An *arm* is what one panel shows: the maps of one model made by one method (e.g. ``resnet18+se/gradcam``).
Every item is one sampled image for which every arm has a map from the same seed's runs; the seed is
drawn per item among those seeds. Items are drawn without replacement, reproducibly from ``seed``.
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from sqlalchemy.orm import Session

from medattn.rundir import layout
from medattn.survey.blinding import MAX_ARMS, new_key
from medattn.survey.render import image_rgb, legend, overlay, png_bytes
from medattn.survey.security import hash_token, new_token
from medattn.survey.source import read_run_maps, read_runs, read_sample, sample_path
from medattn.survey.store import (
    SCHEMA_VERSION,
    Arm,
    Item,
    Meta,
    Panel,
    SurveyError,
    create_schema,
    database_url,
    make_engine,
    sqlite_path,
    writer,
)

TARGETS = ("predicted", "true")


@dataclass(frozen=True)
class SurveyPlan:
    """Arms (model x method, sorted) and items (image, seed, and for each arm the run and map row)."""

    dataset: str
    arms: pd.DataFrame
    items: pd.DataFrame
    panels: pd.DataFrame


@dataclass(frozen=True)
class CreatedSurvey:
    """What ``create_survey`` wrote; ``admin_token`` is shown once and stored only hashed."""

    url: str
    images_dir: Path
    n_items: int
    arms: list[str]
    admin_token: str


def _map_rows(run_dir: Path, runs: pd.DataFrame, methods: list[str], target: str) -> pd.DataFrame:
    """Return one row per (run, image, method) with a map: the first matching index row of each run."""
    frames = []
    for run in runs.itertuples(index=False):
        index = read_run_maps(run_dir, run.maps).index
        rows = index[index["method"].isin(methods) & (index["target"] == target)]
        rows = rows.drop_duplicates(["image_id", "method"], keep="first")
        frames.append(rows[["row", "image_id", "method"]].assign(
            model=run.model, backbone=run.backbone, attention=run.attention or "none", seed=int(run.seed),
            maps=run.maps, run_dir=run.run_dir))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def _select_runs(runs: pd.DataFrame, dataset: str | None, models: list[str] | None) -> tuple[str, pd.DataFrame]:
    """Return the dataset and its runs (restricted to ``models``), checking the names."""
    datasets = sorted(runs["dataset"].astype(str).unique())
    if dataset is None:
        if len(datasets) > 1:
            raise SurveyError(f"--dataset: the run explains {len(datasets)} datasets; choose one of {datasets}")
        dataset = datasets[0]
    if dataset not in datasets:
        raise SurveyError(f"--dataset: unknown dataset {dataset!r}; use one of {datasets}")
    runs = runs[runs["dataset"].astype(str) == dataset]
    if models:
        unknown = sorted(set(models) - set(runs["model"]))
        if unknown:
            raise SurveyError(f"--models: unknown model(s) {unknown}; explained models: "
                              f"{sorted(runs['model'].unique())}")
        runs = runs[runs["model"].isin(models)]
    return dataset, runs


def plan_survey(run_dir: Path, methods: list[str], n_items: int, *, models: list[str] | None = None,
                dataset: str | None = None, target: str = "predicted", seed: int = 0) -> SurveyPlan:
    """Return the survey's arms, items and panels drawn from RUN_DIR's stored maps."""
    if target not in TARGETS:
        raise SurveyError(f"--target: must be one of {TARGETS}, got {target!r}")
    if n_items < 1:
        raise SurveyError(f"--items: must be >= 1, got {n_items}")
    dataset, runs = _select_runs(read_runs(run_dir), dataset, models)
    rows = _map_rows(run_dir, runs, methods, target)
    if rows.empty:
        raise SurveyError(f"--methods: no maps for method(s) {methods} with target {target!r} in {run_dir}")
    arms = (rows[["model", "backbone", "attention", "method"]].drop_duplicates()
            .sort_values(["model", "method"]).reset_index(drop=True))
    if len(arms) < 2:
        raise SurveyError(f"--methods/--models: a survey compares >= 2 panels, found {len(arms)} "
                          f"({', '.join(arms['model'] + '/' + arms['method'])})")
    if len(arms) > MAX_ARMS:
        raise SurveyError(f"--models/--methods: {len(arms)} panels per item, at most {MAX_ARMS}; choose fewer")
    complete = rows.groupby(["image_id", "seed"]).apply(lambda g: len(g[["model", "method"]].drop_duplicates()),
                                                        include_groups=False)
    complete = complete[complete == len(arms)].reset_index()[["image_id", "seed"]]
    eligible = sorted(complete["image_id"].unique())
    if len(eligible) < n_items:
        raise SurveyError(f"--items: only {len(eligible)} image(s) have a map for every one of the {len(arms)} "
                          f"panels; ask for at most {len(eligible)}")
    rng = np.random.default_rng(seed)
    chosen = [eligible[i] for i in sorted(rng.choice(len(eligible), n_items, replace=False))]
    seeds = complete.groupby("image_id")["seed"].agg(sorted)
    items = pd.DataFrame({"image_id": chosen, "seed": [int(rng.choice(seeds[i])) for i in chosen]})
    panels = rows.merge(items, on=["image_id", "seed"]).merge(arms.reset_index(names="arm"),
                                                              on=["model", "backbone", "attention", "method"])
    return SurveyPlan(dataset, arms, items, panels.drop_duplicates(["image_id", "arm"]))


def _class_names(run_dir: Path, runs_dir: str) -> list[str]:
    """Return the class names in a run's model.json (empty when absent)."""
    path = run_dir / runs_dir / layout.SIDECAR
    try:
        return list(json.loads(path.read_text())["data"]["class_names"])
    except (OSError, ValueError, KeyError, TypeError):
        return []


def _write_png(folder: Path, rgb: np.ndarray) -> str:
    """Write ``rgb`` as a PNG with a random name in ``folder``; return the name."""
    name = f"{secrets.token_hex(16)}.png"
    (folder / name).write_bytes(png_bytes(rgb))
    return name


def _owner_only_file(path: Path) -> None:
    """Create the SQLite file ``path`` readable by its owner only (SQLite gives its -wal/-shm files the same mode).

    The database holds the CSRF and blinding secrets, the admin token's hash and the de-blinded answers.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
    path.chmod(0o600)


def default_images_dir(url: str) -> Path | None:
    """Return the images folder beside a SQLite survey (``survey.db`` -> ``survey.images``), None otherwise."""
    path = sqlite_path(url)
    return path.with_suffix(".images") if path is not None else None


def create_survey(run_dir: Path, out: str | Path, methods: list[str], n_items: int, *,
                  models: list[str] | None = None, dataset: str | None = None, target: str = "predicted",
                  seed: int = 0, images_dir: Path | None = None) -> CreatedSurvey:
    """Plan the survey, render its panels into ``images_dir`` and write the survey database ``out``."""
    run_dir = Path(run_dir).resolve()
    plan = plan_survey(run_dir, methods, n_items, models=models, dataset=dataset, target=target, seed=seed)
    images_dir = images_dir or default_images_dir(database_url(out))
    if images_dir is None:
        raise SurveyError("--images: a PostgreSQL survey needs a folder for its rendered images")
    images_dir = Path(images_dir).resolve()
    if images_dir.exists() and any(images_dir.iterdir()):
        raise SurveyError(f"{images_dir}: images folder exists and is not empty; choose a new --out or --images")
    if sqlite_path(database_url(out)) is not None:
        _owner_only_file(sqlite_path(database_url(out)))
    engine = make_engine(out, must_exist=False)
    url = engine.url.render_as_string(hide_password=False)
    create_schema(engine)
    images_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    images_dir.chmod(0o700)
    sample = read_sample(run_dir, plan.dataset)
    position = {str(i): k for k, i in enumerate(sample.ids)}
    missing = sorted(set(plan.items["image_id"]) - set(position))
    if missing:
        raise SurveyError(f"{sample_path(run_dir, plan.dataset)}: no image for id(s) {missing[:5]} named in the "
                          "runs' map index")
    admin_token = new_token()
    with Session(writer(engine)) as session, session.begin():
        arm_rows = [Arm(dataset=plan.dataset, **row) for row in plan.arms.to_dict("records")]
        session.add_all(arm_rows)
        session.flush()
        base = {}
        for number, item in enumerate(plan.items.itertuples(index=False)):
            rgb = image_rgb(sample.images[position[item.image_id]])
            base[item.image_id] = rgb
            label = int(sample.labels[position[item.image_id]])
            session.add(Item(number=number, image_id=item.image_id, label=label, seed=item.seed,
                             image_file=_write_png(images_dir, rgb)))
        session.flush()
        item_ids = {i.image_id: i.id for i in session.query(Item)}
        maps_cache: dict[str, np.ndarray] = {}
        for panel in plan.panels.itertuples(index=False):
            if panel.maps not in maps_cache:
                maps_cache[panel.maps] = read_run_maps(run_dir, panel.maps).maps
            heat = maps_cache[panel.maps][int(panel.row)]
            session.add(Panel(item_id=item_ids[panel.image_id], arm_id=arm_rows[int(panel.arm)].id,
                              file=_write_png(images_dir, overlay(base[panel.image_id], heat)),
                              run_dir=panel.run_dir, map_row=int(panel.row)))
        classes = _class_names(run_dir, str(plan.panels["run_dir"].iloc[0]))
        sqlite = sqlite_path(url)
        stored_images = str(images_dir.relative_to(sqlite.parent)) if sqlite and images_dir.is_relative_to(
            sqlite.parent) else str(images_dir)
        settings = {"schema": str(SCHEMA_VERSION), "seed": str(seed), "blinding_key": new_key(),
                    "secret": secrets.token_hex(32), "admin_hash": hash_token(admin_token),
                    "images_dir": stored_images, "run_dir": str(run_dir), "dataset": plan.dataset,
                    "target": target, "class_names": json.dumps(classes),
                    "legend_file": _write_png(images_dir, legend())}
        session.add_all(Meta(key=k, value=v) for k, v in settings.items())
    engine.dispose()
    return CreatedSurvey(url=url, images_dir=images_dir, n_items=len(plan.items),
                         arms=list(plan.arms["model"] + "/" + plan.arms["method"]), admin_token=admin_token)
