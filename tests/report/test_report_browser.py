"""report.html opens in headless Chromium with every figure decoded, and renders to a non-blank page."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from report_helpers import BuiltReport

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync")


def chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    """Run headless Chromium with a throwaway profile; fail the test (never skip) when it is not installed."""
    if not CHROMIUM.is_file():
        pytest.fail(f"{CHROMIUM} not found: the HTML report test needs Debian's chromium; run `make venv` "
                    "(or `apt-get install -y chromium`)")
    profile = tmp_path / "profile"
    profile.mkdir(exist_ok=True)
    try:
        return subprocess.run([str(CHROMIUM), *FLAGS, f"--user-data-dir={profile}", *args], capture_output=True,
                              text=True, timeout=120, check=False)
    finally:
        shutil.rmtree(profile, ignore_errors=True)


def test_every_figure_loads_in_headless_chromium(built_report: BuiltReport, tmp_path: Path):
    url = built_report.paths.html.resolve().as_uri()
    dom = chromium(tmp_path, "--virtual-time-budget=10000", "--dump-dom", url)
    match = re.search(r'<body[^>]*data-images-loaded="([^"]*)"', dom.stdout)
    assert match, f"chromium printed no page (exit {dom.returncode}): {dom.stderr[-2000:]}"
    n = len(built_report.paths.figures)
    assert match.group(1) == f"{n}/{n}", f"images loaded: {match.group(1)}, expected {n}/{n}"

    shot = tmp_path / "report.png"
    run = chromium(tmp_path, f"--screenshot={shot}", "--window-size=1280,4000", url)
    assert shot.is_file(), f"no screenshot (exit {run.returncode}): {run.stderr[-2000:]}"
    pixels = np.asarray(Image.open(shot).convert("RGB"))
    assert pixels.shape == (4000, 1280, 3)
    # a rendered report: text, tables and figures give many distinct colours and little empty page
    packed = (pixels[..., 0].astype(np.int32) << 16) | (pixels[..., 1].astype(np.int32) << 8) | pixels[..., 2]
    assert len(np.unique(packed)) > 500
    assert (pixels.min(axis=2) < 200).mean() > 0.03
