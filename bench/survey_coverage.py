"""Coverage of the survey's win-rate interval when raters differ: rater-clustered (now) vs Wilson (medattn <= 0.1).

Each simulated survey has ``--raters`` raters who each answer ``--items`` forced choices among three maps.
Every rater has their own taste: they pick the attention map with probability
logistic(logit(``--base``) + u), u ~ Normal(0, ``--spread``) drawn once per rater, and otherwise one of the
two other maps at random. The quantity a survey estimates is the population's share of choices for the
attention map, E[logistic(logit(base) + u)], computed here by numerical integration (scipy ``quad``),
independently of the simulation. For every simulated survey the table counts whether the interval covers it:

* clustered: :func:`medattn.survey.analyze.win_rates` (what ``survey analyze`` prints: CR1 cluster-robust
  by rater, t with raters - 1 df);
* Wilson: statsmodels ``proportion_confint(wins, shown, method="wilson")`` over all answers, the interval
  medattn <= 0.1 printed (it treats one rater's answers as independent people).

    python bench/survey_coverage.py                         # 500 simulations per setting
    python bench/survey_coverage.py --sims 200 --raters 15  # one setting

Prints a table and writes JSON to bench/results/survey_coverage.json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import integrate, special, stats
from statsmodels.stats.proportion import proportion_confint

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src")]

from medattn.survey.analyze import win_rates  # noqa: E402

ARMS = ("resnet18+cbam/gradcam", "resnet18+se/gradcam", "resnet18/gradcam")  # the first is the attention map


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sims", type=int, default=500)
    p.add_argument("--raters", default="6,15,30", help="comma-separated numbers of raters, one setting each")
    p.add_argument("--items", type=int, default=20)
    p.add_argument("--base", type=float, default=0.6, help="choice probability of the median rater")
    p.add_argument("--spread", type=float, default=1.5, help="sd of the raters' logit offsets")
    p.add_argument("--seed", type=int, default=2024)
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "survey_coverage.json")
    return p.parse_args(argv)


def population_share(base: float, spread: float) -> float:
    """Return E[logistic(logit(base) + u)], u ~ N(0, spread^2), by numerical integration (base when spread = 0)."""
    centre = np.log(base / (1 - base))
    if spread == 0:
        return base
    value, _ = integrate.quad(lambda u: stats.norm.pdf(u, 0, spread) * special.expit(centre + u), -np.inf, np.inf)
    return float(value)


def simulate(rng: np.random.Generator, n_raters: int, n_items: int, base: float, spread: float) -> pd.DataFrame:
    """Return one survey's answers (rater, item, arm, best) with a planted rater-level preference."""
    p = special.expit(np.log(base / (1 - base)) + rng.normal(0, spread, n_raters))
    attention = rng.random((n_raters, n_items)) < p[:, None]
    other = 1 + rng.integers(0, 2, (n_raters, n_items))
    chosen = np.where(attention, 0, other)  # index into ARMS
    best = (chosen[:, :, None] == np.arange(len(ARMS))).astype(int)  # rater x item x arm
    raters, items, arms = np.meshgrid(np.arange(1, n_raters + 1), np.arange(n_items), np.arange(len(ARMS)),
                                      indexing="ij")
    return pd.DataFrame({"rater": raters.ravel(), "item": items.ravel(),
                         "arm": np.asarray(ARMS)[arms.ravel()], "best": best.ravel()})


def coverage(n_raters: int, args: argparse.Namespace, truth: float) -> dict:
    """Return both intervals' coverage and mean width for the attention map over ``args.sims`` surveys."""
    rng = np.random.default_rng([args.seed, n_raters])
    hits = {"clustered": 0, "wilson": 0}
    widths = {"clustered": [], "wilson": []}
    for _ in range(args.sims):
        answers = simulate(rng, n_raters, args.items, args.base, args.spread)
        row = win_rates(answers).set_index("arm").loc[ARMS[0]]
        low, high = proportion_confint(int(row["wins"]), int(row["shown"]), method="wilson")
        for name, (lo, hi) in (("clustered", (row["ci_low"], row["ci_high"])), ("wilson", (low, high))):
            hits[name] += int(lo <= truth <= hi)
            widths[name].append(hi - lo)
    out = {"raters": n_raters, "items": args.items, "sims": args.sims}
    for name in hits:
        share = hits[name] / args.sims
        out[f"{name}_coverage"] = share
        out[f"{name}_coverage_se"] = float(np.sqrt(share * (1 - share) / args.sims))
        out[f"{name}_mean_width"] = float(np.mean(widths[name]))
    return out


def main(argv: list[str] | None = None) -> None:
    """Run every setting, print the table, write the JSON."""
    args = parse_args(argv)
    truth = population_share(args.base, args.spread)
    start = time.perf_counter()
    rows = [coverage(int(n), args, truth) for n in args.raters.split(",")]
    print(f"truth (population share choosing the attention map) = {truth:.4f}; base {args.base}, "
          f"logit sd {args.spread}, {args.items} items per rater, nominal 95%")
    print(f"{'raters':>7}{'sims':>6}{'clustered':>11}{'(se)':>7}{'width':>7}{'Wilson':>8}{'(se)':>7}{'width':>7}")
    for r in rows:
        print(f"{r['raters']:>7}{r['sims']:>6}{r['clustered_coverage']:>11.3f}{r['clustered_coverage_se']:>7.3f}"
              f"{r['clustered_mean_width']:>7.3f}{r['wilson_coverage']:>8.3f}{r['wilson_coverage_se']:>7.3f}"
              f"{r['wilson_mean_width']:>7.3f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"truth": truth, "base": args.base, "spread": args.spread, "seed": args.seed,
                                    "rows": rows, "seconds": time.perf_counter() - start,
                                    "load_avg": os.getloadavg()}, indent=2))
    print(f"{time.perf_counter() - start:.1f} s; JSON in {args.out}")


if __name__ == "__main__":
    main()
