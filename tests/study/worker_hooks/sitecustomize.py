"""Test-only hooks for `medattn` worker subprocesses; inert unless a test sets MEDATTN_TEST_PAUSE/_BARRIER.

Tests put this folder first on PYTHONPATH so that every Python process they start (the `medattn` command and
the workers it spawns) imports it, and set one of (comma-separated key=value settings):

MEDATTN_TEST_PAUSE="dir=DIR,stage=tune|final|any,epochs=E,nth=K"
    The K-th run (default 1) of that stage in a process trains for real for E epochs (default 0), writes
    `DIR/<pid>-<K>.marker` and waits to be stopped (SIGTERM, SIGINT, SIGKILL). The test waits for the marker
    instead of sleeping a fixed time, so its signal always lands mid-run however loaded the machine is.
MEDATTN_TEST_BARRIER="dir=DIR,n=N"
    The first run of each process writes `DIR/<pid>.ready` and waits until N processes have, then trains for
    real: N workers are inside a run at the same moment (a barrier across processes), or the run fails.
"""

from __future__ import annotations

import os

LIMIT_S = 1800  # never hang a test for ever (generous: worker start-up on a loaded machine is slow)


def _settings(name: str) -> dict[str, str] | None:
    text = os.environ.get(name)
    return dict(item.split("=", 1) for item in text.split(",")) if text else None


def _install(pause: dict[str, str] | None, barrier: dict[str, str] | None) -> None:
    import time
    from pathlib import Path

    import medattn.train.loop as loop

    real_train, calls = loop.train_run, {"tune": 0, "final": 0, "all": 0}

    def wait_until(done, what: str) -> None:
        deadline = time.monotonic() + LIMIT_S
        while not done():
            if time.monotonic() > deadline:
                raise RuntimeError(f"test hook: {what} did not happen within {LIMIT_S} s")
            time.sleep(0.05)

    def hold(out_dir) -> None:
        Path(pause["dir"], f"{os.getpid()}-{pause.get('nth', '1')}.marker").write_text(str(out_dir or "tune"))
        wait_until(lambda: False, "the signal that stops this run")

    def train_run(data, model, train, seed, out_dir, on_epoch=None):
        stage = "tune" if out_dir is None else "final"
        calls[stage] += 1
        calls["all"] += 1
        if barrier and calls["all"] == 1:
            folder = Path(barrier["dir"])
            (folder / f"{os.getpid()}.ready").write_text("")
            wait_until(lambda: len(list(folder.glob("*.ready"))) >= int(barrier["n"]), "the other workers' runs")
        chosen = pause and pause.get("stage", "any") in ("any", stage) and \
            calls["all" if pause.get("stage", "any") == "any" else stage] == int(pause.get("nth", "1"))
        if not chosen:
            return real_train(data, model, train, seed, out_dir, on_epoch)
        epochs = int(pause.get("epochs", "0"))
        if epochs == 0:
            hold(out_dir)

        def report_then_hold(epoch: int, metrics: dict) -> None:
            if on_epoch is not None:
                on_epoch(epoch, metrics)
            if epoch == epochs:
                hold(out_dir)

        return real_train(data, model, train, seed, out_dir, report_then_hold)

    loop.train_run = train_run


if os.environ.get("MEDATTN_TEST_PAUSE") or os.environ.get("MEDATTN_TEST_BARRIER"):
    _install(_settings("MEDATTN_TEST_PAUSE"), _settings("MEDATTN_TEST_BARRIER"))
