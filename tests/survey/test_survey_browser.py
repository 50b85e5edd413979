"""End to end in headless Chromium (Debian chromium driven by Playwright): invitations, two raters answering with
clicks and keys, a SIGKILL of the server half-way, resume after restart, and an export holding exactly the answers.

Screenshots of the rater and admin pages at desktop and tablet widths are written to ``$MEDATTN_SURVEY_SHOTS``
(default: the test's temporary folder).
"""

from __future__ import annotations

import io
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from survey_helpers import make_survey

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync"]
DESKTOP = {"width": 1366, "height": 900}
TABLET = {"width": 820, "height": 1180}


def free_port() -> int:
    """Return a free TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(db: Path, port: int, log: Path) -> subprocess.Popen:
    """Start `medattn survey serve` and wait until it answers."""
    exe = Path(sys.executable).parent / "medattn"
    proc = subprocess.Popen([str(exe), "survey", "serve", str(db), "--port", str(port)], env=os.environ.copy(),
                            stdout=log.open("a"), stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"survey server exited with {proc.returncode}: {log.read_text()[-2000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return proc
        except OSError:
            time.sleep(0.2)
    proc.kill()
    pytest.fail(f"survey server did not start in 120 s: {log.read_text()[-2000:]}")


def answer_by_clicks(page, best: str, scores: dict[str, int]) -> None:
    """Answer the open item with mouse clicks (taps on a tablet) and the save button."""
    page.click(f"#panel-{best} label.best")
    for label, score in scores.items():
        page.click(f'#panel-{label} .scale label:has(input[value="{score}"])')
    page.fill("#comment", f"best is {best}")
    with page.expect_navigation():
        page.click("#save")


def answer_by_keys(page, best: str, scores: dict[str, int]) -> None:
    """Answer the open item with the keyboard only: letter for the best map, digits in panel order, Enter."""
    page.locator("h1").click()  # focus on the page, not on a form field
    page.keyboard.press(best.lower())
    for label in sorted(scores):
        page.keyboard.press(str(scores[label]))
    with page.expect_navigation():
        page.keyboard.press("Enter")


def heading(page) -> str:
    """Return the page's h1 text."""
    return page.locator("h1").first.inner_text()


@pytest.mark.slow
def test_two_raters_complete_the_survey_across_a_server_kill(tmp_path: Path):
    if not CHROMIUM.is_file():
        pytest.fail(f"{CHROMIUM} not found: the survey browser test needs Debian's chromium; run `make venv` "
                    "(or `apt-get install -y chromium`)")
    from playwright.sync_api import sync_playwright

    shots = Path(os.environ.get("MEDATTN_SURVEY_SHOTS", tmp_path / "shots"))
    shots.mkdir(parents=True, exist_ok=True)
    made = make_survey(tmp_path, n_items=5)
    port, log = free_port(), tmp_path / "server.log"
    base = f"http://127.0.0.1:{port}"
    server = start_server(made.db, port, log)
    given: dict[int, dict[int, tuple[str, dict[str, int]]]] = {1: {}, 2: {}}
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
            admin = browser.new_context(viewport=DESKTOP).new_page()
            admin.goto(f"{base}/admin")
            admin.fill("#token", made.created.admin_token)
            admin.click("button[type=submit]")
            admin.fill("#count", "2")
            admin.fill("#note", "ward A")
            admin.click("text=Create invitation links")
            links = admin.locator("input.link").evaluate_all("els => els.map(e => e.value)")
            assert len(links) == 2 and all(link.startswith(f"{base}/r/") for link in links)
            admin.screenshot(path=str(shots / "admin-desktop.png"), full_page=True)

            one = browser.new_context(viewport=DESKTOP).new_page()
            two = browser.new_context(viewport=TABLET, has_touch=True, is_mobile=True).new_page()
            for page, link, specialty, years in ((one, links[0], "radiology", 12), (two, links[1], "pathology", 3)):
                page.goto(link)
                if page is two:
                    two.screenshot(path=str(shots / "profile-tablet.png"), full_page=True)
                page.select_option("#specialty", specialty)
                page.fill("#years", str(years))
                with page.expect_navigation():
                    page.click("text=Start the survey")
                assert heading(page) == "Image 1 of 5"

            # rater 1: all five, alternating clicks and keys
            plan = [("A", {"A": 5, "B": 2, "C": 1}), ("C", {"A": 1, "B": 3, "C": 4}), ("B", {"A": 2, "B": 5, "C": 3}),
                    ("A", {"A": 4, "B": 4, "C": 2}), ("C", {"A": 1, "B": 1, "C": 5})]
            for position, (best, scores) in enumerate(plan, start=1):
                assert heading(one) == f"Image {position} of 5"
                if position == 2:
                    one.screenshot(path=str(shots / "rater-desktop-empty.png"), full_page=True)
                (answer_by_keys if position % 2 else answer_by_clicks)(one, best, scores)
                given[1][position] = (best, scores)
            assert heading(one) == "Thank you!"

            # rater 2 (tablet): two answers, then the server dies
            for position, (best, scores) in enumerate(plan[:2], start=1):
                if position == 2:
                    two.click("#panel-B label.best")
                    two.click('#panel-A .scale label:has(input[value="4"])')
                    two.screenshot(path=str(shots / "rater-tablet-partly-answered.png"), full_page=True)
                answer_by_clicks(two, best, scores)
                given[2][position] = (best, scores)
            assert heading(two) == "Image 3 of 5"
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(timeout=30)
            server = start_server(made.db, port, log)
            two.goto(links[1])  # the same link, after the restart
            assert heading(two) == "Image 3 of 5"
            for position, (best, scores) in enumerate(plan[2:], start=3):
                answer_by_keys(two, best, scores)
                given[2][position] = (best, scores)
            assert heading(two) == "Thank you!"
            two.goto(f"{links[1]}/item/3")
            two.screenshot(path=str(shots / "rater-tablet-answered.png"), full_page=True)
            one.set_viewport_size(TABLET)
            one.goto(f"{base}/admin")  # a rater's browser has no admin session
            assert "Admin token" in one.content()

            admin.goto(f"{base}/admin")
            admin.screenshot(path=str(shots / "admin-desktop-progress.png"), full_page=True)
            admin.set_viewport_size(TABLET)
            admin.screenshot(path=str(shots / "admin-tablet.png"), full_page=True)
            assert admin.locator("table.progress-table tbody tr").count() == 2
            csv = admin.request.get(f"{base}/admin/export.csv").text()
            browser.close()
    finally:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait(timeout=30)

    table = pd.read_csv(io.StringIO(csv), keep_default_na=False)
    assert len(table) == 2 * 5 * 3 and not table.duplicated(["rater", "item", "label"]).any()
    for rater, answers in given.items():
        for position, (best, scores) in answers.items():
            rows = table[(table["rater"] == rater) & (table["position"] == position)].set_index("label")
            assert rows["score"].to_dict() == scores, (rater, position)
            assert rows.index[rows["best"] == 1].tolist() == [best]
    assert set(table["specialty"]) == {"radiology", "pathology"}
    server_log = log.read_text()
    assert made.created.admin_token not in server_log and "/r/***" in server_log
    assert not any(link.rsplit("/", 1)[-1] in server_log for link in links)
    # `medattn survey analyze` exports the same answers into RUN_DIR/survey (where the report reads them)
    exe = Path(sys.executable).parent / "medattn"
    done = subprocess.run([str(exe), "survey", "analyze", str(made.db)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    exported = pd.read_csv(made.run_dir / "survey" / "answers.csv", keep_default_na=False)
    pd.testing.assert_frame_equal(exported.drop(columns="answered_at"), table.drop(columns="answered_at"))
    assert "2 raters, 5 images, 10 answers" in done.stdout
    assert {p.name for p in shots.glob("*.png")} >= {"admin-desktop.png", "admin-tablet.png",
                                                     "rater-desktop-empty.png", "rater-tablet-answered.png"}
