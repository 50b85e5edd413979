"""Mutation score per module: how many small code changes (mutants) the module's own fast tests catch.

Mutation testing (DeMillo, Lipton and Sayward, "Hints on test data selection", IEEE Computer 1978): change one
operator, constant or call at a time and run the tests; a mutant the tests still pass on ("survivor") is a
behaviour no test pins, or an equivalent rewrite. The tool is mutmut 3 (https://github.com/boxed/mutmut): it
writes every mutant of a function into one copy of the package behind a trampoline, starts pytest once per
module to record which tests reach which function, then forks one worker per mutant that runs only those
tests (`process_isolation = forkserver`: the forks come from a process that has imported pytest and torch but
run no torch work, which keeps torch's thread pools fork-safe).

Each module in `MODULES` runs in its own folder `mutants/<module>/` (cwd of mutmut, with `src` and `tests`
linked from the checkout and a `pyproject.toml` holding the repository's pytest settings plus this module's
`[tool.mutmut]` section), so a module mutates only its file and starts only the test files listed for it.
Results are fresh every run (the folder is rebuilt): mutmut would otherwise keep old verdicts when only the
tests changed. Modules run one after another.

    python bench/mutation_score.py                            # every module in MODULES
    python bench/mutation_score.py --modules stats/verdict.py  # one module
    python bench/mutation_score.py --root /tmp/old-checkout   # another checkout (e.g. a git worktree)
    python bench/mutation_score.py --before old.json          # print old -> new scores per module

Prints killed / total per module and the survivors, and writes bench/results/mutation_score.json (or --json).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# Module (under src/medattn/) -> the fast unit-test files that state its behaviour. The one place to update when a
# module moves or gains a test file; a listed test file missing from the checkout (an older commit) is skipped and
# named in the output. Tests that train a model (tests/analysis/test_usage_cli.py, ~45 s) are left
# out: every surviving mutant would rerun them.
MODULES: dict[str, tuple[str, ...]] = {
    "segment/metrics.py": ("tests/segment/test_seg_metrics.py",),
    "stats/compare.py": ("tests/stats/test_stats_compare.py", "tests/stats/test_one_seed.py"),
    "stats/verdict.py": ("tests/stats/test_stats_verdicts.py", "tests/stats/test_stats_compare.py",
                         "tests/stats/test_stats_boundaries.py"),
    "stats/correction.py": ("tests/stats/test_stats_correction.py", "tests/stats/test_stats_compare.py",
                            "tests/stats/test_correction_grouped.py", "tests/stats/test_stats_boundaries.py"),
    "stats/paired.py": ("tests/stats/test_stats_paired.py", "tests/stats/test_stats_power.py"),
    "analysis/citest.py": ("tests/analysis/test_citest.py", "tests/analysis/test_usage_calibration.py",
                           "tests/analysis/test_usage_inputs.py"),
    "analysis/usage.py": ("tests/analysis/test_features_table.py", "tests/analysis/test_usage_correction.py",
                          "tests/analysis/test_usage_calibration.py", "tests/analysis/test_usage_marks.py"),
    "analysis/probes.py": ("tests/analysis/test_probes.py", "tests/analysis/test_probe_wiring.py"),
    "analysis/scorecard.py": ("tests/analysis/test_scorecard.py",),
    "explain/localisation.py": ("tests/explain/test_localisation.py", "tests/explain/test_quantus_agreement.py",
                                "tests/explain/test_scoring_wiring.py", "tests/explain/test_localisation_edges.py"),
    "explain/faithfulness.py": ("tests/explain/test_faithfulness.py", "tests/explain/test_quantus_agreement.py",
                                "tests/explain/test_scoring_wiring.py"),
    "explain/randomisation.py": ("tests/explain/test_randomisation_and_attention.py",
                                 "tests/explain/test_quantus_agreement.py", "tests/explain/test_scoring_wiring.py",
                                 "tests/explain/test_cascade.py", "tests/explain/test_data_randomisation.py"),
    "survey/blinding.py": ("tests/survey/test_survey_create.py", "tests/survey/test_survey_app.py",
                           "tests/survey/test_blinding_behaviour.py"),
    "survey/security.py": ("tests/survey/test_survey_security.py", "tests/survey/test_survey_app.py"),
    "runtime/precision.py": ("tests/runtime/test_precision.py", "tests/train/test_bf16_training_step.py"),
    "models/stem.py": ("tests/runtime/test_precision.py", "tests/train/test_precision.py",
                       "tests/models/test_placement_and_build.py",
                       "tests/models/test_stem_policy.py"),
}

# Added to every pytest start. `-p torch` imports torch in the fork server before it forks (the conftest's autouse
# fixture imports it in every test's setup, 7 s per mutant otherwise); no:unraisableexception skips the full
# garbage collections pytest runs at the end of each session (1.5 s per mutant in a process holding torch).
PYTEST_ARGS = ["-p", "no:cacheprovider", "-p", "torch", "-p", "no:unraisableexception"]

# Lines not mutated: `raise` statements (their wording and error type; the condition above them is still mutated), which
# are a sixth of all mutants and are pinned by the error-message tests, not by the verdict tests.
SKIP_LINES = [r"^\s*raise\b"]

DETECTED = {"killed", "timeout", "segfault"}  # segfault: mutmut's name for a worker killed by a signal


def mutmut_section(module: str, tests: tuple[str, ...]) -> str:
    """The `[tool.mutmut]` TOML section that mutates only `module` and selects only `tests`."""
    return "\n".join([
        "", "[tool.mutmut]",
        'source_paths = ["src"]',
        f'only_mutate = ["src/medattn/{module}"]',
        f"pytest_add_cli_args_test_selection = {json.dumps(list(tests))}",
        f"pytest_add_cli_args = {json.dumps(PYTEST_ARGS)}",
        f"do_not_mutate_patterns = {json.dumps(SKIP_LINES)}",
        'process_isolation = "forkserver"',
        "use_git_change_detection = false",
        "",
    ])


def prepare(root: Path, module: str, tests: tuple[str, ...]) -> Path:
    """Make a fresh mutmut folder for `module`: links to the checkout's src and tests, and its config."""
    pyproject = (root / "pyproject.toml").read_text()
    if "[tool.mutmut]" in pyproject:
        raise SystemExit(f"{root}/pyproject.toml has a [tool.mutmut] section; remove it, MODULES configures mutmut")
    work = root / "mutants" / module.removesuffix(".py").replace("/", ".")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    (work / "src").symlink_to(root / "src")
    (work / "tests").symlink_to(root / "tests")
    (work / "pyproject.toml").write_text(pyproject + mutmut_section(module, tests))
    return work


def mutmut(work: Path, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    """Run the mutmut console script installed beside this Python, in `work`."""
    exe = Path(sys.executable).parent / "mutmut"
    return subprocess.run([str(exe), *args], cwd=work, env=env, capture_output=True, text=True)


def statuses(work: Path, env: dict[str, str]) -> dict[str, str]:
    """{mutant name: status} from `mutmut results --all true` (lines `    name: status`)."""
    out = mutmut(work, "results", "--all", "true", env=env).stdout
    return dict(re.findall(r"^\s+(\S+): (.+)$", out, flags=re.MULTILINE))


def score_module(root: Path, module: str, max_children: int, show_diffs: bool) -> dict:
    """Run mutmut on one module and return its counts, survivors and run time."""
    tests = tuple(t for t in MODULES[module] if (root / t).is_file())
    skipped = [t for t in MODULES[module] if t not in tests]
    if not (root / "src/medattn" / module).is_file() or not tests:
        return {"module": module, "error": f"src/medattn/{module} or all its tests missing in {root}; update MODULES"}
    work = prepare(root, module, tests)
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    start = time.perf_counter()
    run = mutmut(work, "run", "--max-children", str(max_children), env=env)
    seconds = time.perf_counter() - start
    (work / "mutmut-run.log").write_text(run.stdout + run.stderr)
    found = statuses(work, env)
    if run.returncode != 0 or not found:
        return {"module": module, "error": f"mutmut run failed (exit {run.returncode}); see {work}/mutmut-run.log",
                "seconds": round(seconds, 1)}
    counts: dict[str, int] = {}
    for status in found.values():
        counts[status] = counts.get(status, 0) + 1
    survivors = sorted(name for name, status in found.items() if status not in DETECTED)
    killed = sum(counts.get(s, 0) for s in DETECTED)
    result = {"module": module, "killed": killed, "total": len(found), "score": round(killed / len(found), 4),
              "counts": counts, "seconds": round(seconds, 1), "tests": list(tests), "tests_not_found": skipped,
              "survivors": {name: found[name] for name in survivors}}
    if show_diffs:
        result["diffs"] = {name: mutmut(work, "show", name, env=env).stdout for name in survivors}
    return result


def print_table(results: list[dict], before: dict[str, dict]) -> None:
    """One line per module (killed / total, %, seconds; the `before` score if given), then the survivors of each."""
    print(f"\n{'module':<26} {'before':>18} {'killed/total':>12} {'score':>7} {'time':>7}")
    for r in results:
        if "error" in r:
            print(f"{r['module']:<26} {r['error']}")
            continue
        b = before.get(r["module"], {})
        was = f"{b['killed']}/{b['total']} {100 * b['score']:.1f}% ->" if "score" in b else ""
        print(f"{r['module']:<26} {was:>18} {r['killed']:>5} / {r['total']:<4} {100 * r['score']:>6.1f}% "
              f"{r['seconds']:>6.0f}s")
        if r["tests_not_found"]:
            print(f"{'':<26} test files not in this checkout: {', '.join(r['tests_not_found'])}")
    for r in results:
        if r.get("survivors"):
            print(f"\n{r['module']}: {len(r['survivors'])} not killed")
            for name, status in r["survivors"].items():
                print(f"  {name}: {status}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--modules", nargs="*", default=None, help="paths under src/medattn (default: all in MODULES)")
    parser.add_argument("--root", type=Path, default=REPO, help="checkout to mutate (default: this one)")
    parser.add_argument("--json", type=Path, default=None, help="output (default: <root>/bench/results/...)")
    parser.add_argument("--max-children", type=int, default=2, help="mutants tested at once")
    parser.add_argument("--before", type=Path, default=None, help="an earlier JSON output to compare with")
    parser.add_argument("--no-diffs", action="store_true", help="do not store each survivor's diff in the JSON")
    args = parser.parse_args(argv)
    root = args.root.resolve()
    modules = args.modules or list(MODULES)
    unknown = [m for m in modules if m not in MODULES]
    if unknown:
        parser.error(f"unknown module(s) {unknown}; choose from {', '.join(MODULES)}")
    start = time.perf_counter()
    results = []
    for module in modules:
        print(f"mutating {module} ...", flush=True)
        results.append(score_module(root, module, args.max_children, not args.no_diffs))
    before = {r["module"]: r for r in json.loads(args.before.read_text())["modules"]} if args.before else {}
    print_table(results, before)
    total = time.perf_counter() - start
    print(f"\n{len(modules)} module(s) in {total / 60:.1f} min")
    out = args.json or root / "bench" / "results" / "mutation_score.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"root": str(root), "seconds": round(total, 1), "modules": results}, indent=1))
    print(f"wrote {out}")
    return 1 if any("error" in r for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
