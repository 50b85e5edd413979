"""Tests for the procedural dermoscopy-like dataset `synthetic:derm-synth`."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage
from scipy.stats import chi2_contingency
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import balanced_accuracy_score, roc_auc_score

import medattn.data.synthetic as synthetic
from medattn.data.dataset_spec import DataSpec, LoadContext, load_dataset
from medattn.data.imageset import ImageSet
from medattn.data.synthetic import ARTEFACTS, CONCEPT_PROBS, CONCEPTS, NUISANCE_PROBS, SPLIT_FRACTIONS
from medattn.errors import DataError

CTX = LoadContext()


def derm(**options: object) -> ImageSet:
    """A derm-synth ImageSet built through the loader registry with the given spec options."""
    return load_dataset(DataSpec("synthetic", "derm-synth", {k: str(v) for k, v in options.items()}), CTX)


@pytest.fixture(scope="module")
def big() -> ImageSet:
    """6000 small images with all three artefacts (the tables do not depend on the image size)."""
    return derm(n=6000, size=32, artefacts="patch,ruler,ink", shortcut_corr=0.85)


@pytest.fixture(scope="module")
def medium() -> ImageSet:
    """1500 images at 64 x 64 with all artefacts, for pixel-level checks."""
    return derm(n=1500, size=64, artefacts="patch,ruler,ink", seed=7)


def within(p_hat: float, p: float, n: int, k: float = 4.0) -> bool:
    """Whether an observed proportion lies within k binomial standard errors of p."""
    return abs(p_hat - p) <= k * np.sqrt(p * (1 - p) / n) + 1e-12


def test_spec_string_loads_and_names_everything() -> None:
    ds = load_dataset("synthetic:derm-synth?n=50&size=32&artefacts=patch,ink", CTX)
    assert ds.name == "derm-synth" and ds.class_names == ["benign", "malignant"]
    assert ds.source == "synthetic:derm-synth?n=50&size=32&artefacts=patch,ink"
    assert list(ds.concepts.columns) == [*CONCEPTS, "hair", "vignette", "patch", "ink"]
    assert set(ds.artefact_masks) == {"patch", "ink"}


def test_shapes_and_dtypes(medium: ImageSet) -> None:
    n = 1500
    assert medium.images.shape == (n, 3, 64, 64) and medium.images.dtype == torch.uint8
    assert medium.labels.shape == (n,) and medium.labels.dtype == torch.int64
    for m in (medium.masks, *medium.artefact_masks.values()):
        assert m.shape == (n, 64, 64) and m.dtype == torch.uint8
        assert int(m.min()) == 0 and int(m.max()) == 1
    assert len(set(medium.group)) == n
    assert set(medium.concepts.to_numpy().ravel()) == {0, 1}
    train_labels = medium.labels.numpy()[medium.split == "train"]
    assert medium.class_counts("train") == np.bincount(train_labels).tolist()


def test_split_sizes_follow_documented_fractions(big: ImageSet) -> None:
    counts = {s: int((big.split == s).sum()) for s in big.split_names}
    assert counts == {"train": 3600, "val": 900, "test": 900, "test_ood": 600}
    assert list(SPLIT_FRACTIONS) == ["train", "val", "test", "test_ood"]
    assert np.bincount(big.labels.numpy()).tolist() == [3000, 3000]


def test_concept_prevalence_matches_documented_table(big: ImageSet) -> None:
    labels = big.labels.numpy()
    for concept, probs in CONCEPT_PROBS.items():
        for k, name in enumerate(big.class_names):
            values = big.concepts[concept].to_numpy()[labels == k]
            assert within(values.mean(), probs[name], values.size), (concept, name, values.mean())
    for nuisance, p in NUISANCE_PROBS.items():
        for k in range(2):
            values = big.concepts[nuisance].to_numpy()[labels == k]
            assert within(values.mean(), p, values.size), (nuisance, k, values.mean())


def test_concepts_predict_class_well_but_not_perfectly(big: ImageSet) -> None:
    x, y = big.concepts[list(CONCEPTS)].to_numpy(), big.labels.numpy()
    train, held_out = big.split == "train", big.split != "train"
    model = LogisticRegression().fit(x[train], y[train])
    score = balanced_accuracy_score(y[held_out], model.predict(x[held_out]))
    assert 0.72 < score < 0.9, score


@pytest.mark.parametrize("split", ["train", "val", "test"])
def test_artefacts_co_occur_with_malignant_at_shortcut_corr(big: ImageSet, split: str) -> None:
    labels = big.labels.numpy()[big.split == split]
    for art in ARTEFACTS:
        present = big.concepts[art].to_numpy()[big.split == split]
        assert within(present[labels == 1].mean(), 0.85, int((labels == 1).sum())), (art, split)
        assert within(present[labels == 0].mean(), 0.15, int((labels == 0).sum())), (art, split)
        assert within((present == labels).mean(), 0.85, labels.size), (art, split)


def test_artefacts_independent_of_class_in_test_ood(big: ImageSet) -> None:
    ood = big.split == "test_ood"
    labels = big.labels.numpy()[ood]
    for art in ARTEFACTS:
        present = big.concepts[art].to_numpy()[ood]
        table = np.array([[np.sum((labels == c) & (present == a)) for a in (0, 1)] for c in (0, 1)])
        assert chi2_contingency(table).pvalue > 0.01, (art, table)
        gap = abs(present[labels == 1].mean() - present[labels == 0].mean())
        assert gap < 4 * np.sqrt(0.25 / (labels == 1).sum() + 0.25 / (labels == 0).sum()), (art, gap)
        assert within(present.mean(), 0.5, present.size), art


@pytest.mark.parametrize(("corr", "p_malignant", "p_benign"),
                         [(0.5, 0.5, 0.5), (1.0, 1.0, 0.0), (0.0, 0.0, 1.0)])
def test_shortcut_corr_extremes(corr: float, p_malignant: float, p_benign: float) -> None:
    ds = derm(n=2000, size=32, shortcut_corr=corr)
    in_dist = ds.split != "test_ood"
    labels, present = ds.labels.numpy()[in_dist], ds.concepts["patch"].to_numpy()[in_dist]
    assert within(present[labels == 1].mean(), p_malignant, int((labels == 1).sum()))
    assert within(present[labels == 0].mean(), p_benign, int((labels == 0).sum()))


def test_three_classes_interpolate_between_benign_and_malignant() -> None:
    ds = derm(n=3000, size=32, classes=3, shortcut_corr=0.9)
    assert ds.class_names == ["benign", "atypical", "malignant"]
    labels, train = ds.labels.numpy(), ds.split == "train"
    for concept, probs in CONCEPT_PROBS.items():
        values = ds.concepts[concept].to_numpy()[labels == 1]
        assert within(values.mean(), probs["atypical"], values.size), concept
    for k, p in enumerate((0.1, 0.5, 0.9)):
        present = ds.concepts["patch"].to_numpy()[train & (labels == k)]
        assert within(present.mean(), p, present.size), (k, present.mean())


def test_same_seed_gives_identical_bytes_and_other_seed_differs() -> None:
    a, b, c = (derm(n=80, seed=seed, artefacts="patch,ruler,ink") for seed in (3, 3, 4))
    assert a.images.numpy().tobytes() == b.images.numpy().tobytes()
    assert torch.equal(a.masks, b.masks) and torch.equal(a.labels, b.labels)
    assert all(torch.equal(a.artefact_masks[k], b.artefact_masks[k]) for k in ARTEFACTS)
    assert a.concepts.equals(b.concepts) and (a.split == b.split).all()
    assert not torch.equal(a.images, c.images) and not torch.equal(a.masks, c.masks)


def test_rendering_does_not_depend_on_chunking(monkeypatch: pytest.MonkeyPatch) -> None:
    """An image depends only on its own parameters, never on which images share its render chunk."""
    whole = derm(n=40, seed=5, artefacts="patch,ruler,ink")
    monkeypatch.setattr(synthetic, "_CHUNK_PIXELS", 3 * 64 * 64)
    pieces = derm(n=40, seed=5, artefacts="patch,ruler,ink")
    assert torch.equal(whole.images, pieces.images) and torch.equal(whole.masks, pieces.masks)
    assert all(torch.equal(whole.artefact_masks[k], pieces.artefact_masks[k]) for k in ARTEFACTS)


def test_lesion_masks_nonempty_central_and_disjoint_from_artefacts(medium: ImageSet) -> None:
    masks = medium.masks.numpy().astype(bool)
    assert masks.sum((1, 2)).min() > 100
    yy, xx = np.mgrid[:64, :64] + 0.5
    assert np.hypot(yy - 32, xx - 32)[masks.any(0)].max() < 0.38 * 64  # inside, never near an edge
    for art in ARTEFACTS:
        art_mask = medium.artefact_masks[art].numpy().astype(bool)
        assert not (art_mask & masks).any(), art


def test_artefact_masks_present_exactly_where_the_table_says(medium: ImageSet) -> None:
    for art in ARTEFACTS:
        drawn = medium.artefact_masks[art].numpy().reshape(len(medium.labels), -1).any(1)
        assert (drawn == medium.concepts[art].to_numpy().astype(bool)).all(), art


def test_artefacts_change_the_pixels_under_their_masks() -> None:
    """Same seed with and without artefacts: pixels differ only inside artefact masks."""
    plain = derm(n=60, seed=11, artefacts="none", shortcut_corr=1.0)
    marked = derm(n=60, seed=11, artefacts="patch,ruler,ink", shortcut_corr=1.0)
    assert plain.artefact_masks == {} and "patch" not in plain.concepts
    union = sum(marked.artefact_masks[a].numpy().astype(int) for a in ARTEFACTS) > 0
    changed = (plain.images.numpy() != marked.images.numpy()).any(1)
    present = marked.concepts[list(ARTEFACTS)].to_numpy().any(1)
    assert changed[present].any((1, 2)).all()
    # hair is drawn over artefacts, so the artefact region may differ only partly; outside it nothing does
    assert not (changed & ~union).any()


def _lesion_features(ds: ImageSet) -> dict[str, np.ndarray]:
    """Simple per-image measurements, one aimed at each concept."""
    img, m = ds.images.numpy().astype(np.float32), ds.masks.numpy().astype(bool)
    n, size = m.shape[0], m.shape[-1]
    yy, xx = np.mgrid[:size, :size]
    area = m.sum((1, 2))
    mean_y, mean_x = (m * yy).sum((1, 2)) / area, (m * xx).sum((1, 2)) / area
    dy, dx = yy - mean_y[:, None, None], xx - mean_x[:, None, None]
    cyy, cxx, cxy = ((m * a * b).sum((1, 2)) / area for a, b in ((dy, dy), (dx, dx), (dx, dy)))
    half_trace = (cxx + cyy) / 2
    eccentricity = np.sqrt(np.maximum(half_trace**2 - (cxx * cyy - cxy**2), 0)) / half_trace
    interior = ndimage.binary_erosion(m, structure=np.ones((1, 3, 3)))
    boundary = (m & ~interior).sum((1, 2))
    core = ndimage.binary_erosion(m, structure=np.ones((1, 5, 5)))
    gray = img.mean(1)
    laplace = np.abs(4 * gray - sum(np.roll(gray, s, a) for s in (1, -1) for a in (1, 2)))
    dark_spots = (gray < ndimage.uniform_filter(gray, size=(1, 7, 7)) - 12) & core
    red_blue = np.where(m, img[:, 0] - img[:, 2], np.nan).reshape(n, -1)
    core_area = core.sum((1, 2))
    return {"asymmetry": eccentricity, "irregular_border": boundary**2 / area,
            "multicolour": np.nanstd(red_blue, axis=1), "dots_globules": dark_spots.sum((1, 2)) / core_area,
            "streaks": boundary**2 / area, "pigment_network": (laplace * core).sum((1, 2)) / core_area}


def test_concepts_are_visible_in_the_pixels(medium: ImageSet) -> None:
    for concept, feature in _lesion_features(medium).items():
        auc = roc_auc_score(medium.concepts[concept].to_numpy(), feature)
        assert auc > 0.8, (concept, auc)


@pytest.mark.parametrize(
    ("options", "needle"),
    [({"n": "10", "colour": "red"}, "unknown option(s) colour"), ({"n": "0"}, "n=0"), ({"n": "-4"}, "n=-4"),
     ({"n": "ten"}, "n=ten"), ({"shortcut_corr": "1.5"}, "shortcut_corr=1.5"),
     ({"shortcut_corr": "-0.1"}, "shortcut_corr=-0.1"), ({"shortcut_corr": "nan"}, "shortcut_corr=nan"),
     ({"artefacts": "patch,sticker"}, "sticker"), ({"classes": "4"}, "classes=4"), ({"size": "8"}, "size=8"),
     ({"seed": "-1"}, "seed=-1"), ({"views": "0"}, "views=0"), ({"n": "10", "views": "3"}, "views=3")],
)
def test_bad_options_raise_one_line_data_error(options: dict[str, str], needle: str) -> None:
    with pytest.raises(DataError) as err:
        load_dataset(DataSpec("synthetic", "derm-synth", options), CTX)
    assert needle in str(err.value) and "\n" not in str(err.value)


def test_unknown_generator_lists_the_known_ones() -> None:
    with pytest.raises(DataError, match="unknown synthetic generator 'cells'; use one of derm-synth"):
        load_dataset("synthetic:cells?n=10", CTX)


@pytest.mark.slow
def test_generates_ten_thousand_64px_images_with_every_artefact() -> None:
    """Scale check (time goes to bench/, never into a test): 10,000 images at 64 px with all three artefacts."""
    ds = derm(n=10_000, size=64, artefacts="patch,ruler,ink")
    assert ds.images.shape == (10_000, 3, 64, 64) and ds.images.dtype == torch.uint8
    assert ds.masks is not None and ds.masks.shape == (10_000, 64, 64)


def test_views_one_leaves_the_images_of_earlier_versions_unchanged() -> None:
    """Labels and concept counts of seed 5 as generated before the views option existed (commit 8af8d56)."""
    ds = derm(n=24, size=32, seed=5, artefacts="patch,ink", views=1)
    assert ds.labels.tolist() == [0, 1, 1, 1, 1, 0, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 1, 0, 1, 0, 1, 1, 0, 0]
    assert ds.concepts.sum().tolist() == [10, 6, 12, 8, 8, 13, 13, 8, 14, 12]
    assert torch.equal(ds.images, derm(n=24, size=32, seed=5, artefacts="patch,ink").images)
    assert list(ds.group) == [str(i) for i in range(24)]


@pytest.fixture(scope="module")
def viewed() -> ImageSet:
    """20 lesions photographed 3 times each, at 64 x 64, with all artefacts as per-view nuisances."""
    return derm(n=60, size=64, views=3, artefacts="patch,ruler,ink", shortcut_corr=0.5, seed=3)


def test_views_of_a_lesion_share_group_label_split_and_concepts(viewed: ImageSet) -> None:
    assert list(viewed.group) == [str(i // 3) for i in range(60)]
    for column in [viewed.labels.numpy(), viewed.split, *(viewed.concepts[c].to_numpy() for c in CONCEPTS)]:
        assert (column.reshape(20, 3) == column.reshape(20, 3)[:, :1]).all()
    assert (viewed.split == "train").sum() == 3 * 12  # floor(0.60 x 20 lesions), whole lesions per split
    nuisances = viewed.concepts[["hair", "vignette", *ARTEFACTS]].to_numpy().reshape(20, 3, -1)
    assert (nuisances != nuisances[:, :1]).any(axis=(1, 2)).sum() >= 10  # redrawn per view, not per lesion


def test_views_show_the_same_lesion_on_different_skin(viewed: ImageSet) -> None:
    area = viewed.masks.sum((1, 2)).double().numpy().reshape(20, 3)
    assert np.abs(area / area[:, :1] - 1).max() < 0.05  # the same outline, rotated (pixelisation only)
    assert area[:, 0].max() / area[:, 0].min() > 1.4  # while lesion sizes differ between lesions
    skin = [viewed.images[i][:, viewed.masks[i] == 0].double().median(1).values for i in range(60)]
    gaps = [float((skin[i] - skin[i + 1]).abs().max()) for i in range(0, 60, 3)]
    assert np.median(gaps) > 10  # skin tone and colour cast are redrawn for every view
