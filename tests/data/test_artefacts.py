"""Real-artefact insertion (data/artefacts.py): pasting arithmetic by hand, placement rules on planted lesions,
template scale, and the shipped template folder."""

from __future__ import annotations

import json

import numpy as np
import pytest
from helpers.artefacts import make_template_folder

from medattn.data.artefacts import (
    Lesions,
    Placement,
    insert_artefacts,
    load_templates,
    make_stamps,
    paste,
    place,
)
from medattn.errors import DataError


@pytest.fixture(scope="module")
def bank(tmp_path_factory):
    return load_templates(make_template_folder(tmp_path_factory.mktemp("templates")))


def _one(stamps, kind: str, variant: float = 1.0) -> int:
    """The stamp of a kind at a variant level."""
    return next(i for i, (k, v) in enumerate(zip(stamps.kind, stamps.variant, strict=True))
                if k == kind and v == variant)


def _placement(image, stamp, y0, x0, fy=False, fx=False) -> Placement:
    n = len(image)
    return Placement(np.asarray(image), np.asarray(stamp), np.asarray(y0), np.asarray(x0),
                     np.full(n, fy), np.full(n, fx))


def test_difference_and_ink_paste_by_hand(bank):
    """A difference stamp adds with - without (+40 on its 3x3 block); ink multiplies by template / 255; two
    instances on one spot add up; a stamp half outside the frame is cut, never wrapped to the other side."""
    stamps = make_stamps(bank, 12, 12, field_size=(12, 12))
    b, s = _one(stamps, "bubble"), _one(stamps, "ink")
    img = np.full((3, 3, 12, 12), 100, np.uint8)
    bh, bw = stamps.support[b].shape
    out, masks = paste(img, stamps, _placement([0, 1, 1, 2], [b, b, b, s], [2, 0, 0, 5], [3, -bw + 2, -bw + 2, 4]))
    hy, hx = np.nonzero(stamps.support[b])
    expect = img.copy()
    expect[0, :, 2 + hy, 3 + hx] = 140  # exactly +40 where the 3x3 block is
    assert np.array_equal(out[0], expect[0])
    assert masks["bubble"][0].sum() == 9 and masks["bubble"][0, 2 + hy, 3 + hx].all()
    # image 1: twice the same bubble, 2 of its columns inside: +80 there, nothing wrapped to the right edge
    inside = (-bw + 2 + hx) >= 0
    assert (out[1, 0, hy[inside], (-bw + 2 + hx)[inside]] == 180).all()
    assert (out[1][:, :, 6:] == 100).all() and (masks["bubble"][1].sum() == inside.sum())
    # image 2: ink (128, 64, 200) on 100 -> 100 * (128, 64, 200) / 255
    ink = out[2][:, 5:, 4:].reshape(3, -1)
    for c, v in enumerate((128, 64, 200)):
        assert round(100 * v / 255) in ink[c]
    assert masks["ink"][2].sum() == 8  # the 2x4 ink block


def test_flip_mirrors_the_stamp(bank):
    stamps = make_stamps(bank, 40, 40, field_size=(40, 40))
    r = _one(stamps, "ruler_across", 0.0)
    img = np.full((2, 3, 40, 40), 100, np.uint8)
    out, _ = paste(img, stamps, Placement(np.array([0, 1]), np.array([r, r]), np.array([5, 5]), np.array([2, 2]),
                                          np.array([False, False]), np.array([False, True])))
    h, w = stamps.support[r].shape
    a, m = out[0, 0, 5:5 + h, 2:2 + w], out[1, 0, 5:5 + h, 2:2 + w]
    assert np.array_equal(a[:, ::-1], m) and not np.array_equal(a, m)


def test_templates_scale_with_the_image_per_axis(bank):
    """A template w x h at field 600x450 in an H x W image is (h * H / 450, w * W / 600) pixels (trimmed)."""
    stamps = make_stamps(bank, 90, 300)  # rows x 0.2, columns x 0.5
    r = _one(stamps, "ruler_across", 0.0)  # 4 x 16 template -> about 1 x 8
    h, w = stamps.support[r].shape
    assert w in (8, 9, 10) and h <= 3  # trimming keeps a one-pixel margin
    circle = [i for i, k in enumerate(stamps.kind) if k == "ink_circle"]
    sizes = {stamps.variant[i]: stamps.support[i].shape for i in circle}
    big = sizes[max(sizes)]
    assert big[1] > 2 * big[0]  # the round ring is 2.5 x wider than high after the 0.2 x 0.5 scaling


def test_bubbles_avoid_the_lesion_and_circles_enclose_it(bank):
    """Lesion = left half: no bubble or ink-spot pixel on it; a lesion disc off centre: the ring's centroid is
    the disc's."""
    n, s = 40, 48
    masks = np.zeros((n, s, s), np.uint8)
    masks[:, :, : s // 2] = 1
    img = np.full((n, 3, s, s), 150, np.uint8)
    _, art = insert_artefacts(img, {"bubble": np.ones(n, bool), "ink": np.ones(n, bool)}, bank,
                              lesion_masks=masks, seed=3, field_size=(s * 2, s * 2))
    for t in ("bubble", "ink"):
        assert art[t].sum() > 0 and (art[t] * masks).sum() == 0
    disc = np.zeros((n, s, s), np.uint8)
    yy, xx = np.mgrid[:s, :s]
    disc[:, np.hypot(yy - 18, xx - 28) < 6] = 1
    _, art = insert_artefacts(img, {"ink_circle": np.ones(n, bool)}, bank, lesion_masks=disc, seed=4,
                              field_size=(s, s))
    ys, xs = np.nonzero(art["ink_circle"].sum(0))
    w = art["ink_circle"].sum(0)[ys, xs]
    assert abs(np.average(ys, weights=w) - 18) < 2 and abs(np.average(xs, weights=w) - 28) < 2
    inside = disc[0] > 0
    assert art["ink_circle"][:, inside].mean() < 0.02  # the ring goes round the lesion, not over it


def test_circles_around_a_large_lesion_stay_whole_in_the_frame(bank):
    """A lesion disc 0.8 of the frame wide, off centre: 2 x its diameter would put the ring outside the frame
    (stray arcs); every ring is pasted whole (its mask has every support pixel of its stamp) and within 0.92 of
    the frame."""
    n, s = 30, 48
    yy, xx = np.mgrid[:s, :s]
    disc = np.zeros((n, s, s), np.uint8)
    disc[:, np.hypot(yy - 20, xx - 26) < 0.4 * s] = 1
    stamps = make_stamps(bank, s, s, field_size=(s, s))
    p = place(stamps, {"ink_circle": np.ones(n, bool)}, Lesions.of(disc, n, s, s), s, s, np.random.default_rng(5))
    _, art = paste(np.full((n, 3, s, s), 150, np.uint8), stamps, p)
    support = np.array([stamps.support[k].sum() for k in p.stamp])
    assert (art["ink_circle"].reshape(n, -1).sum(1) == support).all()
    assert (stamps.shape()[p.stamp].max(1) <= 0.92 * s).all()


def test_rulers_touch_an_edge_or_lie_in_the_lower_part(bank):
    n, s = 60, 40
    img = np.full((n, 3, s, s), 150, np.uint8)
    stamps = make_stamps(bank, s, s, field_size=(s, s))
    les = Lesions.of(None, n, s, s)
    p = place(stamps, {"ruler": np.ones(n, bool)}, les, s, s, np.random.default_rng(0))
    _, art = paste(img, stamps, p)
    m = art["ruler"] > 0
    kinds = np.array(stamps.kind)[p.stamp]
    for i in np.flatnonzero(kinds == "ruler_edge"):  # all of it within one strip's thickness of one edge
        ys, xs = np.nonzero(m[i])
        thick = min(stamps.support[p.stamp[i]].shape)
        assert ys.size and min(ys.max(), s - 1 - ys.min(), xs.max(), s - 1 - xs.min()) < thick
    rows = [np.nonzero(m[i].any(1))[0] for i in np.flatnonzero(kinds == "ruler_across")]
    assert rows and all(r.min() >= 0.55 * s for r in rows)


def test_same_seed_same_images_other_seed_other_places(bank):
    img = np.full((6, 3, 32, 32), 120, np.uint8)
    flags = {"ink": np.ones(6, bool), "bubble": np.array([1, 0, 1, 0, 1, 0], bool)}
    a, ma = insert_artefacts(img, flags, bank, seed=5, field_size=(64, 64))
    b, _ = insert_artefacts(img, flags, bank, seed=5, field_size=(64, 64))
    c, _ = insert_artefacts(img, flags, bank, seed=6, field_size=(64, 64))
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert (ma["bubble"].reshape(6, -1).any(1) == flags["bubble"]).all()
    assert ma["ink"].reshape(6, -1).any(1).all()


def test_bad_template_folders_are_one_line_errors(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="has no meta.json"):
        load_templates(tmp_path / "empty")
    with pytest.raises(DataError, match="does not exist"):
        load_templates(tmp_path / "nowhere")
    bad = make_template_folder(tmp_path / "bad")
    meta = json.loads((bad / "meta.json").read_text())
    meta["artefacts"][0]["class"] = "sticker"
    (bad / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(DataError, match=r"artefacts\[0\] has class/subclass sticker"):
        load_templates(bad)


def test_shipped_templates_load_by_kind(shared_data):
    """The shared folder: 20 rulers (14 peripheral, 6 across), 96 bubble pairs, 22 ink spots, 6 circles."""
    folder = shared_data / "artefacts"
    assert (folder / "meta.json").is_file(), f"{folder}/meta.json missing: see shared/data/README.md"
    bank = load_templates(folder)
    counts = {k: len(bank.of(k)) for k in ("ruler_edge", "ruler_across", "bubble", "ink", "ink_circle")}
    assert counts == {"ruler_edge": 14, "ruler_across": 6, "bubble": 96, "ink": 22, "ink_circle": 6}
    # an ink spot is darker than white, a bubble difference is not zero
    assert all(t.absorb.max() > 0.3 for t in bank.of("ink"))
    assert all(np.abs(t.add).max() > 0.05 for t in bank.of("bubble"))
