"""Benchmark the survey server: answers stored per second under 20 concurrent raters, SQLite (WAL) and PostgreSQL.

A survey (40 images x 3 maps, random maps in the explanation-store format) is served by `medattn survey
serve` (one uvicorn process) on each database. Every rater is a thread with its own HTTP client that gives
its profile and then posts one answer per image as fast as the server takes them; every 5th answer is
posted twice (a double submit). The reference in the same run is ONE rater doing the same, so the table
shows how far concurrency scales. Afterwards the database is read back: every answer sent must be stored
exactly once with the scores and choice sent (lost = sent but missing or different, duplicated = more rows
than answers).

    python bench/survey.py                    # 20 raters x 40 answers on SQLite and PostgreSQL
    python bench/survey.py --raters 5 --items 10 --databases sqlite    # a quick look
    python bench/survey.py --lock-seconds 10  # another process holds the SQLite write lock 10 s while one
                                              # rater posts: time a static file and another rater's page
    python bench/survey.py --lock-seconds 10 --lock-posters 20   # ... while 20 raters post

The lock benchmark sends the two GETs together 0.5 s after the blocked POST, each on its own connection.

Prints a table and writes JSON to bench/results/survey.json.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src"), str(ROOT / "tests"), str(ROOT / "tests" / "study")]

from helpers.rundir import explained_run  # noqa: E402

from medattn.survey.export import answers_frame  # noqa: E402
from medattn.survey.store import make_engine, session_factory  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--raters", type=int, default=20)
    p.add_argument("--items", type=int, default=40)
    p.add_argument("--databases", default="sqlite,postgresql")
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "survey.json")
    p.add_argument("--lock-seconds", type=float, default=0,
                   help="instead: another process holds the SQLite write lock this long while one rater posts; "
                        "time a static file and another rater's page")
    p.add_argument("--lock-posters", type=int, default=1, help="with --lock-seconds: raters posting during the lock")
    return p.parse_args(argv)


def free_port() -> int:
    """Return a free TCP port."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def serving(db: str, images: Path, log: Path):
    """Run `medattn survey serve` on ``db``; yield its base URL."""
    port = free_port()
    exe = Path(sys.executable).parent / "medattn"
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'src'}:{os.environ.get('PYTHONPATH', '')}"}
    proc = subprocess.Popen([str(exe), "survey", "serve", db, "--port", str(port), "--images", str(images)],
                            stdout=log.open("w"), stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        for _ in range(600):
            if proc.poll() is not None:
                raise RuntimeError(f"server exited: {log.read_text()[-2000:]}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.2)
        yield f"http://127.0.0.1:{port}"
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)


def csrf(html: str) -> str:
    """Return the CSRF token in a page."""
    return re.search(r'name="csrf" value="([^"]+)"', html).group(1)


def invite(base: str, admin_token: str, n: int) -> list[str]:
    """Create ``n`` invitations through the admin pages; return the tokens."""
    tokens: list[str] = []
    with httpx.Client(base_url=base, follow_redirects=True, timeout=120) as admin:
        admin.post("/admin/login", data={"csrf": csrf(admin.get("/admin").text), "token": admin_token})
        while len(tokens) < n:  # at most 50 links per form
            page = admin.get("/admin").text
            nonce = re.search(r'name="nonce" value="([^"]+)"', page).group(1)
            count = min(50, n - len(tokens))
            page = admin.post("/admin/invite", data={"csrf": csrf(page), "count": str(count), "nonce": nonce}).text
            tokens += re.findall(r'value="http://[^"]+/r/([A-Za-z0-9_-]+)"', page)
    return tokens


def rate(base: str, token: str, n_items: int, seed: int, sent: list, barrier: threading.Barrier) -> list[float]:
    """Be one rater: profile, then one answer per image (every 5th twice); return the answer latencies."""
    rng = np.random.default_rng(seed)
    latencies = []
    with httpx.Client(base_url=base, follow_redirects=False, timeout=120) as client:
        page = client.get(f"/r/{token}").text
        key = csrf(page)
        client.post(f"/r/{token}/profile", data={"csrf": key, "specialty": "radiology", "years": str(seed % 30)})
        barrier.wait()
        for position in range(1, n_items + 1):
            best, scores = "ABC"[rng.integers(3)], {k: int(rng.integers(1, 6)) for k in "ABC"}
            data = {"csrf": key, "best": best, **{f"score_{k}": str(v) for k, v in scores.items()}}
            for _ in range(2 if position % 5 == 0 else 1):
                start = time.perf_counter()
                response = client.post(f"/r/{token}/item/{position}", data=data)
                latencies.append(time.perf_counter() - start)
                if response.status_code != 303:
                    raise RuntimeError(f"answer refused: {response.status_code} {response.text[:300]}")
            sent.append((token, position, best, scores))
    return latencies


def run_load(base: str, tokens: list[str], n_items: int) -> dict:
    """Let every token's rater answer concurrently; return timing and what was sent."""
    sent: list = []
    barrier = threading.Barrier(len(tokens) + 1)
    results: dict[int, list[float]] = {}
    errors: list[BaseException] = []

    def worker(i: int, token: str) -> None:
        try:
            results[i] = rate(base, token, n_items, i, sent, barrier)
        except BaseException as exc:  # noqa: BLE001  (reported below)
            errors.append(exc)
            barrier.abort()

    threads = [threading.Thread(target=worker, args=(i, t)) for i, t in enumerate(tokens)]
    for t in threads:
        t.start()
    barrier.wait()
    start = time.perf_counter()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    if errors:
        raise errors[0]
    latencies = np.concatenate([np.asarray(v) for v in results.values()])
    return {"wall_s": wall, "sent": sent, "posts": len(latencies), "p50_ms": 1e3 * float(np.median(latencies)),
            "p95_ms": 1e3 * float(np.quantile(latencies, 0.95))}


def check(db: str, sent: list, token_numbers: dict[str, int]) -> tuple[int, int]:
    """Return (lost, duplicated) answers: sent but not stored as sent, and stored beyond one per answer."""
    with session_factory(make_engine(db))() as session:
        table = answers_frame(session)
    duplicated = int(table.duplicated(["rater", "item", "label"]).sum())
    stored = {(r, p): g for (r, p), g in table.groupby(["rater", "position"])}
    lost = 0
    for token, position, best, scores in sent:
        rows = stored.get((token_numbers[token], position))
        if rows is None or rows.set_index("label")["score"].to_dict() != scores or \
                rows.loc[rows["best"] == 1, "label"].tolist() != [best]:
            lost += 1
    return lost, duplicated


def bench_database(kind: str, url: str, work: Path, n_raters: int, n_items: int) -> list[dict]:
    """Create a survey on ``url`` and measure 1 rater, then ``n_raters`` concurrent raters."""
    from medattn.survey.create import create_survey

    run_dir = work / "run"
    if not run_dir.exists():
        explained_run(run_dir, n_images=n_items, seeds=(0,))
    images = work / f"{kind}.images"
    made = create_survey(run_dir, url, ["gradcam"], n_items, images_dir=images)
    rows = []
    with serving(url, images, work / f"{kind}.log") as base:
        for raters in (1, n_raters):
            tokens = invite(base, made.admin_token, raters)
            numbers = {t: i for i, t in enumerate(tokens, start=_first_number(url, raters))}
            try:
                load = run_load(base, tokens, n_items)
            except RuntimeError as exc:
                kept = ROOT / "bench" / "results" / f"survey_{kind}_server.log"
                kept.parent.mkdir(parents=True, exist_ok=True)
                kept.write_text((work / f"{kind}.log").read_text())
                raise RuntimeError(f"{exc}\nserver log kept in {kept}") from exc
            lost, duplicated = check(url, load["sent"], numbers)
            rows.append({"database": kind, "raters": raters, "answers": len(load["sent"]), "posts": load["posts"],
                         "wall_s": load["wall_s"], "answers_per_s": load["posts"] / load["wall_s"],
                         "p50_ms": load["p50_ms"], "p95_ms": load["p95_ms"], "lost": lost, "duplicated": duplicated})
    return rows


def _first_number(url: str, n_new: int) -> int:
    """Return the rater number of the first of the ``n_new`` raters just invited."""
    from sqlalchemy import func, select

    from medattn.survey.store import Rater

    with session_factory(make_engine(url))() as session:
        return int(session.scalar(select(func.max(Rater.number)))) - n_new + 1


HOLD = "import sqlite3, sys, time; c = sqlite3.connect(sys.argv[1], isolation_level=None); " \
       "c.execute('BEGIN IMMEDIATE'); print('locked', flush=True); time.sleep(float(sys.argv[2])); c.execute('COMMIT')"


def bench_lock(work: Path, seconds: float, posters: int = 1) -> dict:
    """Time GET /static/survey.css and another rater's item page while another process holds the write lock
    and ``posters`` raters each wait on it with an answer."""
    from medattn.survey.create import create_survey

    run_dir = explained_run(work / "run", n_images=5, seeds=(0,))
    db, images = work / "lock.db", work / "lock.images"
    made = create_survey(run_dir, db, ["gradcam"], 5, images_dir=images)
    with serving(str(db), images, work / "lock.log") as base:
        *writers, reader = invite(base, made.admin_token, posters + 1)
        clients = [httpx.Client(base_url=base, timeout=300) for _ in range(posters + 1)]
        keys = []
        for client, token in zip(clients, [*writers, reader], strict=True):
            key = csrf(client.get(f"/r/{token}").text)
            client.post(f"/r/{token}/profile", data={"csrf": key, "specialty": "radiology", "years": "3"})
            keys.append(key)
        holder = subprocess.Popen([sys.executable, "-c", HOLD, str(db), str(seconds)], stdout=subprocess.PIPE,
                                  text=True)
        holder.stdout.readline()
        posted: list[tuple[int, float]] = []

        def post(client: httpx.Client, token: str, key: str) -> None:
            data = {"csrf": key, "best": "A", "score_A": "1", "score_B": "2", "score_C": "3"}
            start = time.perf_counter()
            status = client.post(f"/r/{token}/item/1", data=data).status_code
            posted.append((status, time.perf_counter() - start))

        posts = [threading.Thread(target=post, args=args) for args in zip(clients, writers, keys, strict=False)]
        for thread in posts:
            thread.start()
        time.sleep(0.5)
        timings: dict = {}

        def get(name: str, path: str) -> None:
            with httpx.Client(base_url=base, timeout=300) as client:
                start = time.perf_counter()
                client.get(path).raise_for_status()
                timings[name] = time.perf_counter() - start

        getters = [threading.Thread(target=get, args=item) for item in
                   (("static_s", "/static/survey.css"), ("other_rater_page_s", f"/r/{reader}/item/1"))]
        for getter in getters:  # both sent together while the lock is held
            getter.start()
        for getter in getters:
            getter.join()
        for thread in posts:
            thread.join()
        holder.wait()
        for client in clients:
            client.close()
    statuses = sorted({status for status, _ in posted})
    return {"lock_s": seconds, "posters": posters, **timings, "answer_statuses": statuses,
            "answers_stored_within_s": max(t for _, t in posted)}


def main(argv: list[str] | None = None) -> None:
    """Run the benchmark, print the table, write the JSON."""
    args = parse_args(argv)
    if args.lock_seconds:
        with tempfile.TemporaryDirectory(prefix="medattn-survey-lock-") as tmp:
            result = bench_lock(Path(tmp), args.lock_seconds, args.lock_posters)
        result["load_avg"] = os.getloadavg()
        print(json.dumps(result))
        out = args.out.with_name(args.out.stem + "_lock.json")
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=2))
        return
    rows = []
    with tempfile.TemporaryDirectory(prefix="medattn-survey-bench-") as tmp, ExitStack() as stack:
        work = Path(tmp)
        for kind in args.databases.split(","):
            if kind == "sqlite":
                url = str(work / "survey.db")
            else:
                from study_helpers import postgres_server

                url = stack.enter_context(postgres_server())
            rows += bench_database(kind, url, work, args.raters, args.items)
    for row in rows:
        reference = next(r for r in rows if r["database"] == row["database"] and r["raters"] == 1)
        row["vs_1_rater"] = row["answers_per_s"] / reference["answers_per_s"]
    header = f"{'database':<11}{'raters':>7}{'answers':>9}{'posts':>7}{'answers/s':>11}{'vs 1 rater':>11}" \
             f"{'p50 ms':>8}{'p95 ms':>8}{'lost':>6}{'dup':>5}"
    print(header)
    for r in rows:
        print(f"{r['database']:<11}{r['raters']:>7}{r['answers']:>9}{r['posts']:>7}{r['answers_per_s']:>11.1f}"
              f"{r['vs_1_rater']:>11.2f}{r['p50_ms']:>8.1f}{r['p95_ms']:>8.1f}{r['lost']:>6}{r['duplicated']:>5}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"rows": rows, "cpus": os.cpu_count(), "load_avg": os.getloadavg()}, indent=2))
    print(f"posts/s counts every POST, double submits included; load average {os.getloadavg()[0]:.1f} on "
          f"{os.cpu_count()} CPUs; JSON in {args.out}")


if __name__ == "__main__":
    main()
