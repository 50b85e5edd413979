"""Calibration of the feature-usage statistics by simulation: interval coverage, null mean, size and power.

Worlds are drawn from known joint distributions p(label, feature, prediction), so the true CMI is computed
exactly. For each setting, `--sims` seeded simulations (default 1,000) run `medattn.analysis.citest.usage_test`
as `medattn features` does and record:

- coverage of the CMI interval (true CMI inside [cmi_low, cmi_high]), at CMI = 0 and at a planted CMI > 0,
  binary (2 labels, 2 predicted classes, binary feature, n = 500) and 7-class (7 labels, 7 predicted classes,
  a 4-level feature, n = 1,500: sparse enough that the permutation path is taken in some tables);
- the mean of the corrected CMI and its Monte Carlo standard error (under H0 the mean should be 0);
- size (H0) and power of the omnibus G-test and of the directional Mantel/CMH test at alpha = 0.05, with the
  power setting of issue 23: 7 classes, n = 750, a binary feature of prevalence 10 %, log-odds 0.5 on
  P(predicted class = positive).

- size and power of the report's model-vs-model usage test: the corrected CMI of two models on the same
  images, differenced per seed, paired t-test over seeds (`medattn.stats.paired.paired_t`), 5 seeds;
- size and power of the generalised covariance measure on P(positive class) (vectorised, 3 labels, n = 400,
  a label-dependent binary feature, a shift of 0.3 log-odds with the feature for power).

Prints Markdown tables and writes bench/results/usage_calibration.json.

    PYTHONPATH=src nice -n 5 python bench/usage_calibration.py [--sims 1000]
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from medattn.analysis.citest import gcm_test, usage_test

OUT = Path(__file__).parent / "results" / "usage_calibration.json"


@dataclass(frozen=True)
class World:
    """p(z), p(f | z) (kz, kf) and p(x | z, f) (kz, kf, kx): a population with a known CMI."""

    name: str
    pz: np.ndarray
    pf_z: np.ndarray
    px_zf: np.ndarray
    n: int

    def cmi_bits(self) -> float:
        """The exact I(X; F | Z) in bits."""
        px_z = np.einsum("zf,zfx->zx", self.pf_z, self.px_zf)
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(self.px_zf > 0, np.log2(self.px_zf / px_z[:, None, :]), 0.0)
        return float(np.einsum("z,zf,zfx,zfx->", self.pz, self.pf_z, self.px_zf, ratio))

    def draw(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(prediction, feature, label) codes of n images."""
        z = rng.choice(len(self.pz), self.n, p=self.pz)
        f = (rng.random(self.n)[:, None] > np.cumsum(self.pf_z[z], 1)).sum(1)
        x = (rng.random(self.n)[:, None] > np.cumsum(self.px_zf[z, f], 1)).sum(1)
        kf, kx = self.pf_z.shape[1], self.px_zf.shape[2]
        return np.minimum(x, kx - 1), np.minimum(f, kf - 1), z


def binary_world(effect: float) -> World:
    """2 labels; a binary feature that depends on the label; P(pred = 1) shifted by `effect` log-odds with f."""
    pz = np.array([0.6, 0.4])
    pf_z = np.array([[0.7, 0.3], [0.4, 0.6]])
    base = np.array([-1.2, 1.0])[:, None] + effect * np.array([0.0, 1.0])[None, :]
    p1 = 1 / (1 + np.exp(-base))
    return World(f"binary, n=500, effect {effect}", pz, pf_z, np.stack([1 - p1, p1], -1), 500)


def multiclass_world(effect: float, n: int = 1500, levels: int = 4, prevalence: float | None = None,
                     name: str = "") -> World:
    """7 labels, 7 predicted classes (70 % correct); the feature's level raises P(pred = 6) by `effect` log-odds."""
    k = 7
    pz = np.array([0.3, 0.2, 0.15, 0.12, 0.1, 0.08, 0.05])
    if prevalence is None:
        pf_z = np.stack([np.roll(np.linspace(1, 2, levels), z % levels) for z in range(k)])
    else:
        pf_z = np.tile([1 - prevalence, prevalence], (k, 1))
    pf_z = pf_z / pf_z.sum(1, keepdims=True)
    px = np.full((k, k), 0.3 / (k - 1))
    np.fill_diagonal(px, 0.7)
    logit = np.log(px[:, None, 6] / (1 - px[:, None, 6])) + effect * np.arange(pf_z.shape[1])[None, :]
    p6 = 1 / (1 + np.exp(-logit))  # (kz, kf)
    rest = px[:, None, :6] / px[:, None, :6].sum(-1, keepdims=True) * (1 - p6[..., None])
    px_zf = np.concatenate([rest, p6[..., None]], -1)
    return World(name or f"7-class, {levels}-level feature, n={n}, effect {effect}", pz, pf_z, px_zf, n)


def simulate(world: World, sims: int, seed: int, permutations: int) -> dict:
    """Coverage, corrected-CMI mean and SE, rejection rates of the omnibus and the directional test."""
    rng = np.random.default_rng(seed)
    truth = world.cmi_bits()
    rows = []
    for s in range(sims):
        x, f, z = world.draw(rng)
        r = usage_test(x, f, z, permutations=permutations, seed=seed * 100_003 + s, positive=6 if x.max() > 1 else 1)
        rows.append((r.cmi_low <= truth <= r.cmi_high, r.cmi_corrected_bits, r.cmi_bits, r.pvalue < 0.05,
                     r.direction_pvalue < 0.05, r.method == "permutation"))
    cover, corrected, plugin, omni, direct, perm = (np.array(c, dtype=float) for c in zip(*rows, strict=True))
    return {"setting": world.name, "true_cmi_bits": truth, "sims": sims, "coverage": cover.mean(),
            "corrected_mean": corrected.mean(), "corrected_se": corrected.std(ddof=1) / np.sqrt(sims),
            "plugin_mean": plugin.mean(), "omnibus_reject": omni.mean(), "directional_reject": direct.mean(),
            "permutation_share": perm.mean()}


def paired_seed_rates(sims: int, seeds: int = 5, seed: int = 77) -> dict:
    """Rejection rate at 0.05 of the paired-by-seed t-test of corrected-CMI differences, under H0 and a shift."""
    from medattn.stats.paired import paired_t

    rng = np.random.default_rng(seed)
    out = {}
    for name, copy_b in (("null", 0.15), ("more usage", 0.05)):
        rejections = 0
        for _ in range(sims):
            world = rng.integers(0, 2**31)
            r = np.random.default_rng(world)
            n = 600
            z = r.integers(0, 2, n)
            f = (r.random(n) < np.where(z == 1, 0.6, 0.3)).astype(int)
            diffs = []
            for k in range(seeds):  # each seed: both models retrained = fresh prediction noise, same images
                a = np.where(r.random(n) < 0.15, f, np.where(r.random(n) < 0.8, z, 1 - z))
                b = np.where(r.random(n) < copy_b, f, np.where(r.random(n) < 0.8, z, 1 - z))
                ta = usage_test(a, f, z, permutations=200, seed=k)
                tb = usage_test(b, f, z, permutations=200, seed=k + 1000)
                diffs.append(ta.cmi_corrected_bits - tb.cmi_corrected_bits)
            rejections += paired_t(np.array(diffs)).p < 0.05
        out[name] = rejections / sims
    return {"sims": sims, "seeds": seeds, "size": out["null"], "power": out["more usage"]}


def gcm_rates(sims: int, seed: int = 99) -> dict:
    """Rejection rate of the GCM at alpha 0.05 under H0 and at a 0.3 log-odds shift (sign agreement too)."""
    rng = np.random.default_rng(seed)
    z = rng.integers(0, 3, (sims, 400))
    f = (rng.random(z.shape) < np.where(z == 1, 0.7, 0.3)).astype(int)
    noise = rng.normal(size=z.shape)
    _, p0 = gcm_test(1 / (1 + np.exp(-(z - 1 + noise))), f, z)
    t1, p1 = gcm_test(1 / (1 + np.exp(-(z - 1 + 0.3 * f + noise))), f, z)
    return {"sims": sims, "size": float((p0 < 0.05).mean()), "power": float((p1 < 0.05).mean()),
            "right_sign": float((t1[p1 < 0.05] > 0).mean())}


def main() -> None:
    """Run every setting, print the table, write the JSON."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--sims", type=int, default=1000)
    parser.add_argument("--permutations", type=int, default=999)
    args = parser.parse_args()
    worlds = [binary_world(0.0), binary_world(0.8), multiclass_world(0.0), multiclass_world(0.35),
              multiclass_world(0.0, n=750, prevalence=0.1, name="7-class, binary feature 10 %, n=750, log-odds 0"),
              multiclass_world(0.5, n=750, prevalence=0.1, name="7-class, binary feature 10 %, n=750, log-odds 0.5")]
    results = []
    print("| setting | true CMI (bits) | sims | coverage | mean corrected CMI (MC SE) | mean plug-in CMI | "
          "omnibus reject | directional reject | permutation share | s |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for k, world in enumerate(worlds):
        start = time.perf_counter()
        r = simulate(world, args.sims, seed=k + 1, permutations=args.permutations)
        r["seconds"] = time.perf_counter() - start
        results.append(r)
        print(f"| {r['setting']} | {r['true_cmi_bits']:.4f} | {r['sims']} | {r['coverage']:.3f} | "
              f"{r['corrected_mean']:+.5f} ({r['corrected_se']:.5f}) | {r['plugin_mean']:.4f} | "
              f"{r['omnibus_reject']:.3f} | {r['directional_reject']:.3f} | {r['permutation_share']:.2f} | "
              f"{r['seconds']:.0f} |", flush=True)
    gcm = gcm_rates(max(args.sims, 1000))
    print(f"\nGCM on P(positive), 3 labels, n=400, {gcm['sims']} sims: size {gcm['size']:.3f}, power at 0.3 "
          f"log-odds {gcm['power']:.3f} (right sign {gcm['right_sign']:.3f})")
    paired = paired_seed_rates(max(args.sims, 1000))
    print(f"model vs model (corrected CMI paired by seed, t-test, {paired['seeds']} seeds, {paired['sims']} sims): "
          f"size {paired['size']:.3f}, power (feature copied into 15 % vs 5 % of predictions) {paired['power']:.3f}")
    OUT.parent.mkdir(exist_ok=True)
    OUT.write_text(json.dumps({"settings": results, "gcm": gcm, "paired_seeds": paired}, indent=1))


if __name__ == "__main__":
    main()
