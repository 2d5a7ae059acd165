"""``spadelab study``: votes through the real page in Chromium, kill/restart, concurrency, bad
requests, the report's statistics and its scripted label.

The studies here are built without a network: method A's images are reddish and B's bluish, so
the scripted rater in the browser tells them apart by looking at the pixels it is shown.
"""

from __future__ import annotations

import csv
import io
import math
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from studio_helpers import BROWSER_TIMEOUT_MS, free_port, live_server, write_png

from spadelab.studio import study_cli
from spadelab.studio.study_db import Study, create_database, left_method
from spadelab.studio.study_report import agreement, report, wilson_interval
from spadelab.studio.study_server import create_study_app

N_PAIRS = 10


def make_study(root: Path, n: int = N_PAIRS) -> Path:
    """A study of n pairs: A's image of pair i is (200, 10 i, 0), B's is (0, 10 i, 200)."""
    pairs = []
    for i in range(n):
        write_png(root / "labels" / f"{i:03d}.png", (30, 90, 200))
        write_png(root / "a" / f"{i:03d}.png", (200, 10 * i, 0))
        write_png(root / "b" / f"{i:03d}.png", (0, 10 * i, 200))
        pairs.append((i, f"labels/{i:03d}.png", f"a/{i:03d}.png", f"b/{i:03d}.png"))
    meta = {"a": "run_a", "b": "run_b", "a_name": "A", "b_name": "B", "dataset": "synthetic"}
    create_database(root, {**meta, "question": "which is more realistic?", "secret": "s3"}, pairs)
    return root


def db_votes(study_dir: Path) -> list[tuple]:
    connection = sqlite3.connect(study_dir / "study.sqlite")
    try:
        return connection.execute(
            "SELECT rater_id, pair_id, left_method, choice, winner FROM votes ORDER BY id"
        ).fetchall()
    finally:
        connection.close()


def wanted(pair: int) -> str:
    """The scripted rater's taste: A, except on every third pair."""
    return "b" if pair % 3 == 0 else "a"


PIXEL = """(id) => {
  const img = document.getElementById(id);
  const canvas = document.createElement("canvas");
  canvas.width = canvas.height = 1;
  const context = canvas.getContext("2d");
  context.drawImage(img, 0, 0, 1, 1);
  return Array.from(context.getImageData(0, 0, 1, 1).data.slice(0, 3));
}"""

IMAGES_LOADED = """() => ["left-img", "right-img"].every((id) => {
  const img = document.getElementById(id);
  return img.complete && img.naturalWidth > 0 && img.src.includes(`/${document.body.dataset.pair}/`);
})"""


def rate(page, votes: int) -> list[tuple[int, str, str]]:
    """Vote on ``votes`` pairs by looking at the images: (pair, side clicked, method wanted)."""
    cast = []
    for _ in range(votes):
        page.wait_for_function(IMAGES_LOADED)
        pair = int(page.evaluate("document.body.dataset.pair"))
        red, _, blue = page.evaluate(PIXEL, "left-img")
        left_is = "a" if red > blue else "b"
        side = "left" if left_is == wanted(pair) else "right"
        page.click(f"#{side}")
        page.wait_for_function(
            f"document.body.dataset.pair !== '{pair}' || !document.getElementById('done').hidden"
        )
        cast.append((pair, side, wanted(pair)))
    return cast


def start(page, url: str, rater: str) -> None:
    page.goto(url)
    page.wait_for_selector("#rater")
    page.fill("#rater", rater)
    page.click("#begin")
    page.wait_for_selector("#rate:not([hidden])")


@pytest.mark.slow
def test_scripted_rater_votes_through_ten_pairs(page, tmp_path: Path) -> None:
    study_dir = make_study(tmp_path / "study")
    with live_server(create_study_app(Study(study_dir))) as url:
        start(page, url, "alice")
        cast = rate(page, N_PAIRS)
        page.wait_for_selector("#done:not([hidden])")
    votes = db_votes(study_dir)
    assert len(votes) == N_PAIRS
    assert sorted(v[1] for v in votes) == list(range(N_PAIRS))
    for rater, pair, left, _choice, winner in votes:
        assert rater == "alice"
        assert winner == wanted(pair)
        assert left == left_method("s3", "alice", pair)
    # The order was randomised: both sides held A at least once, and the pairs came shuffled.
    assert {v[2] for v in votes} == {"a", "b"}
    assert [c[0] for c in cast] != list(range(N_PAIRS))
    # Headless Chromium sets navigator.webdriver: the rater is recorded as scripted.
    assert all(v["scripted"] == 1 for v in Study(study_dir).votes())


def _serve_subprocess(study_dir: Path, port: int) -> subprocess.Popen:
    process = subprocess.Popen(
        [sys.executable, "-m", "spadelab.cli", "study", "serve", str(study_dir), f"port={port}"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    # Generous: the shared test machine can take a minute to import and start the server.
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/api/info", timeout=1).status_code == 200:
                return process
        except httpx.HTTPError:
            time.sleep(0.1)
        if process.poll() is not None:
            raise RuntimeError(process.stdout.read().decode())
    process.kill()
    raise RuntimeError("spadelab study serve did not start within 180 s")


@pytest.mark.slow
def test_kill_and_restart_loses_and_duplicates_nothing(page, tmp_path: Path) -> None:
    study_dir = make_study(tmp_path / "study")
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    server = _serve_subprocess(study_dir, port)
    try:
        start(page, url, "bob")
        first = rate(page, 4)
        server.send_signal(signal.SIGKILL)
        server.wait(timeout=30)
        assert len(db_votes(study_dir)) == 4
        server = _serve_subprocess(study_dir, port)
        # The rater comes back (same id): the page resumes at pair 5 of 10.
        page.goto(f"{url}?rater=bob")
        page.wait_for_selector("#rate:not([hidden])")
        assert page.text_content("#progress") == f"pair 5 of {N_PAIRS}"
        rest = rate(page, N_PAIRS - 4)
    finally:
        server.kill()
        server.wait(timeout=30)
    votes = db_votes(study_dir)
    assert len(votes) == N_PAIRS
    assert sorted(v[1] for v in votes) == list(range(N_PAIRS))
    assert {c[0] for c in first}.isdisjoint(c[0] for c in rest)
    assert all(winner == wanted(pair) for _, pair, _, _, winner in votes)


@pytest.mark.slow
def test_two_raters_vote_concurrently(browser, tmp_path: Path) -> None:
    study_dir = make_study(tmp_path / "study")
    contexts = [browser.new_context() for _ in range(2)]
    for context in contexts:
        context.set_default_timeout(BROWSER_TIMEOUT_MS)
    try:
        pages = [context.new_page() for context in contexts]
        with live_server(create_study_app(Study(study_dir))) as url:
            for page, rater in zip(pages, ("carol", "dave")):
                start(page, url, rater)
            for _ in range(N_PAIRS):
                for page in pages:
                    rate(page, 1)
    finally:
        for context in contexts:
            context.close()
    votes = db_votes(study_dir)
    assert len(votes) == 2 * N_PAIRS
    for rater in ("carol", "dave"):
        assert sorted(v[1] for v in votes if v[0] == rater) == list(range(N_PAIRS))
    assert all(winner == wanted(pair) for _, pair, _, _, winner in votes)


def test_simultaneous_duplicate_votes_record_one(tmp_path: Path) -> None:
    study = Study(make_study(tmp_path / "study"))
    study.register("erin", scripted=True)
    with live_server(create_study_app(study)) as url:
        barrier = threading.Barrier(8)
        codes: list[int] = []

        def post() -> None:
            barrier.wait()
            body = {"rater": "erin", "pair": 3, "choice": "left"}
            codes.append(httpx.post(f"{url}/api/vote", json=body, timeout=30).status_code)

        threads = [threading.Thread(target=post) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert sorted(codes) == [200] + [409] * 7
    assert len(db_votes(study.dir)) == 1


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"rater": "frank", "pair": 99, "choice": "left"}, 404),  # unknown pair id
        ({"rater": "frank", "pair": -1, "choice": "left"}, 404),
        ({"rater": "frank", "pair": "2", "choice": "left"}, 422),  # non-integer
        ({"rater": "frank", "pair": 2.5, "choice": "left"}, 422),
        ({"rater": "frank", "pair": 2.0, "choice": "left"}, 422),
        ({"rater": "frank", "pair": True, "choice": "left"}, 422),
        ({"rater": "frank", "pair": 2, "choice": "middle"}, 422),
        ({"rater": "frank", "pair": 2}, 422),
        ({"rater": "frank", "pair": 2, "choice": "left", "winner": "a"}, 422),
        ({"rater": "nobody", "pair": 2, "choice": "left"}, 404),  # never opened the page
        ({"rater": "bad id!", "pair": 2, "choice": "left"}, 422),
        ({"rater": "frank", "pair": 1, "choice": "right"}, 409),  # duplicate vote
    ],
)
def test_malformed_votes_are_refused_and_change_nothing(
    tmp_path: Path, body: dict, status: int
) -> None:
    study = Study(make_study(tmp_path / "study"))
    client = TestClient(create_study_app(study))
    assert client.post("/api/rater", json={"rater": "frank"}).status_code == 200
    assert client.post(
        "/api/vote", json={"rater": "frank", "pair": 1, "choice": "left"}
    ).is_success
    before = db_votes(study.dir)
    response = client.post("/api/vote", json=body)
    assert response.status_code == status, response.text
    assert db_votes(study.dir) == before
    # Not JSON at all.
    assert client.post("/api/vote", content=b"pair=1").status_code == 422
    assert db_votes(study.dir) == before


def test_images_follow_the_rater_layout(tmp_path: Path) -> None:
    study = Study(make_study(tmp_path / "study"))
    client = TestClient(create_study_app(study))
    client.post("/api/rater", json={"rater": "gina"})
    for pair in range(N_PAIRS):
        left = client.get(f"/api/image/gina/{pair}/left").content
        a_image = (study.dir / "a" / f"{pair:03d}.png").read_bytes()
        assert (left == a_image) == (left_method("s3", "gina", pair) == "a")
    assert client.get("/api/image/gina/99/left").status_code == 404
    assert client.get("/api/image/gina/1/top").status_code == 404
    assert client.get("/api/next", params={"rater": "nobody"}).status_code == 404


def test_wilson_interval_and_agreement() -> None:
    # Reference values: Wilson (1927) score interval, z = 1.96.
    low, high = wilson_interval(8, 10)
    assert (round(low, 4), round(high, 4)) == (0.4902, 0.9433)
    assert wilson_interval(0, 10)[0] == 0.0
    assert all(math.isnan(x) for x in wilson_interval(0, 0))
    # Two raters, full agreement on 3 pairs with mixed winners: kappa 1.
    votes = [
        {"pair": p, "winner": w, "rater": r}
        for r in ("x", "y")
        for p, w in ((0, "a"), (1, "b"), (2, "a"))
    ]
    kappa, observed, multi = agreement(votes)
    assert (kappa, observed, multi) == (1.0, 1.0, 3)
    # Perfect disagreement on a balanced set: kappa = (0 - 0.5) / 0.5 = -1.
    votes = [{"pair": p, "winner": w, "rater": "x"} for p, w in ((0, "a"), (1, "b"))]
    votes += [{"pair": p, "winner": w, "rater": "y"} for p, w in ((0, "b"), (1, "a"))]
    assert agreement(votes)[0] == -1.0
    assert math.isnan(agreement(votes[:2])[0])  # nobody rated a pair twice


def test_report_labels_scripted_votes(tmp_path: Path, capsys) -> None:
    study_dir = make_study(tmp_path / "study")
    assert study_cli.cli(["simulate", str(study_dir), "raters=3", "prefer_a=1.0"]) == 0
    result = report(study_dir)
    ours = [r for r in result["rows"] if r["source"].startswith("this study")]
    assert [r["source"] for r in ours] == ["this study: SCRIPTED (not people)"]
    assert (ours[0]["votes"], ours[0]["raters"], ours[0]["prefer_a"]) == (30, 3, 100.0)
    assert ours[0]["kappa"] != ours[0]["kappa"]  # all votes for A: kappa undefined (nan)
    assert ours[0]["observed_agreement"] == 100.0
    assert "Scripted votes" in result["markdown"]
    table = list(csv.DictReader(io.StringIO(result["csv"])))
    paper = {(r["dataset"], r["b"]): float(r["prefer_a"]) for r in table if "paper" in r["source"]}
    assert paper[("coco_stuff", "CRN")] == 79.76
    assert paper[("cityscapes", "SIMS")] == 51.52
    assert len(paper) == 10
    assert (study_dir / "report.md").read_text() == result["markdown"]
    assert (study_dir / "report.csv").read_text() == result["csv"]
    out = capsys.readouterr().out
    assert "SCRIPTED" in out


def test_report_separates_people_from_scripted(tmp_path: Path) -> None:
    study = Study(make_study(tmp_path / "study"))
    study.register("person", scripted=False)
    for pair in range(4):
        study.vote("person", pair, "left")
    study_cli.simulate(str(study.dir), raters=1, prefer_a=0.0, seed=1)
    rows = [r for r in report(study.dir)["rows"] if r["source"].startswith("this study")]
    people, scripted = rows
    assert people["source"] == "this study: people" and people["votes"] == 4
    expected = 100 * sum(left_method("s3", "person", p) == "a" for p in range(4)) / 4
    assert people["prefer_a"] == expected
    assert scripted["votes"] == N_PAIRS and scripted["prefer_a"] == 0.0


def test_cli_errors_and_localhost_default(tmp_path: Path, capsys, monkeypatch) -> None:
    assert study_cli.cli(["create", "a=x", "out=y"]) == 2
    assert "b= is missing" in capsys.readouterr().err
    assert study_cli.cli(["create", "a=x", "b=y", "out=z", "nn=3"]) == 2
    assert "unknown setting nn=" in capsys.readouterr().err
    assert study_cli.cli(["serve", str(tmp_path)]) == 2
    assert "study create" in capsys.readouterr().err
    assert study_cli.cli(["frobnicate"]) == 2
    study_dir = make_study(tmp_path / "study")
    assert study_cli.cli(["simulate", str(study_dir), "prefer_a=2"]) == 2
    assert "prefer_a=2.0 must be in [0, 1]" in capsys.readouterr().err
    hosts = []
    import uvicorn

    monkeypatch.setattr(uvicorn, "run", lambda app, host, port, **_: hosts.append((host, port)))
    assert study_cli.cli(["serve", str(study_dir)]) == 0
    assert study_cli.cli(["serve", str(study_dir), "host=0.0.0.0", "port=9000"]) == 0
    assert hosts == [("127.0.0.1", 7861), ("0.0.0.0", 9000)]
    assert "ANY machine" in capsys.readouterr().out
