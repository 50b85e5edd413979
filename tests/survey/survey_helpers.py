"""Build a small run directory in the explanation-store format (random but valid maps, tiny images).

Independent of `medattn explain`: this writes the FIXED store format that the survey reads.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from starlette.testclient import TestClient

from medattn.survey.create import CreatedSurvey, create_survey

MODELS = {"resnet18": ("resnet18", "none"), "resnet18+se": ("resnet18", "se"), "resnet18+cbam": ("resnet18", "cbam")}
CLASSES = ["normal", "pneumonia"]


def make_explained_run(root: Path, *, n_images: int = 12, size: int = 28, seeds: tuple[int, ...] = (0, 1),
                       models: dict[str, tuple[str, str]] = MODELS, dataset: str = "pneu", seed: int = 0) -> Path:
    """Write RUN_DIR/explanations (sample.npz, runs.csv) and one maps.npz + index.csv per run; return RUN_DIR."""
    rng = np.random.default_rng(seed)
    folder = root / "explanations"
    folder.mkdir(parents=True, exist_ok=True)
    ids = np.array([f"img{i:03d}" for i in range(n_images)])
    images = rng.integers(0, 256, (n_images, 1, size, size), dtype=np.uint8)
    labels = rng.integers(0, 2, n_images).astype(np.int64)
    np.savez(folder / "sample.npz", ids=ids, images=images, labels=labels,
             masks=(rng.random((n_images, size, size)) > 0.7).astype(np.uint8), split=np.str_("test"),
             seed=np.int64(seed))
    runs = []
    for model, (backbone, attention) in models.items():
        methods = ["gradcam", "gradcampp"] + ([] if attention == "none" else ["attention"])
        for s in seeds:
            run_dir = Path("artifacts") / dataset / model.replace("+", "_") / f"seed{s}-trial0"
            (root / run_dir / "explanations").mkdir(parents=True, exist_ok=True)
            (root / run_dir / "model.json").write_text(json.dumps({"data": {"class_names": CLASSES}}))
            rows = [(image_id, method, target) for image_id in ids for method in methods
                    for target in ("predicted", "true")]
            maps = rng.random((len(rows), size, size)).astype(np.float16)
            np.savez(root / run_dir / "explanations" / "maps.npz", maps=maps)
            index = pd.DataFrame(rows, columns=["image_id", "method", "target"])
            index.insert(0, "row", range(len(rows)))
            index.insert(3, "layer", np.where(index["method"] == "attention", "", "layer4"))
            index["target_class"], index["predicted"], index["label"], index["probability"] = 1, 1, 0, 0.8
            index.to_csv(root / run_dir / "explanations" / "index.csv", index=False)
            runs.append({"dataset": dataset, "model": model, "backbone": backbone, "attention": attention, "seed": s,
                         "run_dir": str(run_dir), "maps": str(run_dir / "explanations" / "maps.npz")})
    pd.DataFrame(runs).to_csv(folder / "runs.csv", index=False)
    return root


@dataclass(frozen=True)
class MadeSurvey:
    """A created survey: run dir, database path and what create_survey returned."""

    run_dir: Path
    db: Path
    created: CreatedSurvey


def make_survey(tmp: Path, n_items: int = 5, methods: tuple[str, ...] = ("gradcam",)) -> MadeSurvey:
    """Create a survey over the three tiny models' maps in ``tmp``."""
    run_dir = make_explained_run(tmp / "run")
    db = tmp / "survey.db"
    return MadeSurvey(run_dir, db, create_survey(run_dir, db, list(methods), n_items, seed=3))


def csrf_of(html: str) -> str:
    """Return the CSRF token of the first form in ``html``."""
    match = re.search(r'name="csrf" value="([^"]+)"', html)
    assert match, "page has no CSRF field"
    return match.group(1)


def labels_of(html: str) -> list[str]:
    """Return the panel labels an item page shows."""
    return re.findall(r'name="best" value="([A-Z])"', html)


def admin_login(client: TestClient, admin_token: str) -> str:
    """Log ``client`` in as admin; return the dashboard's CSRF token."""
    csrf = csrf_of(client.get("/admin").text)
    page = client.post("/admin/login", data={"csrf": csrf, "token": admin_token})
    assert page.status_code == 200 and "Invite raters" in page.text, page.text[:500]
    return csrf_of(page.text)


def invite(client: TestClient, csrf: str, count: int = 1, note: str = "") -> list[str]:
    """Create ``count`` invitations through the admin page; return the rater tokens."""
    nonce = re.search(r'name="nonce" value="([^"]+)"', client.get("/admin").text).group(1)
    page = client.post("/admin/invite", data={"csrf": csrf, "count": str(count), "note": note, "nonce": nonce})
    assert page.status_code == 200, page.text[:500]
    return re.findall(r'value="http://[^"]+/r/([A-Za-z0-9_-]+)"', page.text)


def give_profile(client: TestClient, token: str, specialty: str = "radiology", years: int = 7) -> str:
    """Fill in a rater's profile; return the first item page's HTML."""
    csrf = csrf_of(client.get(f"/r/{token}").text)
    page = client.post(f"/r/{token}/profile", data={"csrf": csrf, "specialty": specialty, "years": str(years)})
    assert page.status_code == 200, page.text[:500]
    return page.text


def answer(client: TestClient, token: str, position: int, best: str, scores: dict[str, int], comment: str = "",
           csrf: str | None = None):
    """Post one answer; return the response (redirects followed)."""
    csrf = csrf or csrf_of(client.get(f"/r/{token}/item/{position}").text)
    data = {"csrf": csrf, "best": best, "comment": comment, **{f"score_{k}": str(v) for k, v in scores.items()}}
    return client.post(f"/r/{token}/item/{position}", data=data)
