"""``kitchen report``: one self-contained HTML page, checked as text and in a real browser.

The browser test drives Debian's chromium headless (no network: every request would go to a
dead proxy), reads the DOM after the page's script ran, and keeps a screenshot next to the
report under the test's tmp dir.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from kitchen.testing.cli import Kitchen


def _report(kitchen: Kitchen, run_id: str, out: Path) -> str:
    r = kitchen("report", run_id, "--out", str(out))
    assert r.code == 0, r.stderr
    assert r.stdout.strip() == str(out)
    return out.read_text()


def test_report_of_a_resumed_run_holds_every_section(
    kitchen: Kitchen, runs_db: None, tmp_path: Path
) -> None:
    page = _report(kitchen, "again", tmp_path / "again.html")
    # Self-contained: nothing is fetched (the SVG namespace is a name, not a request).
    assert not re.search(r'(src|href)="(https?:)?//', page)
    assert "<script src" not in page and "<link" not in page
    for anchor in ("summary", "attempts", "metrics", "checkpoints", "determinism", "config"):
        assert f'id="{anchor}"' in page
    assert page.count('<svg class="chart"') == 1  # train_mean_nll is the only metric
    assert page.count('class="attempt"') == 2
    assert 'data-attempt="1" data-ended="crashed"' in page
    assert 'data-attempt="2" data-ended="interrupted"' in page
    assert page.count('class="resume"') == 1
    assert page.count('class="superseded"') == 1  # step 1's 2.75, dimmed
    assert page.count('class="superseded-range"') == 1
    assert page.count('class="mismatch"') == 1
    assert "1 determinism warning(s)" in page
    assert "superseded seqs: 6-8" in page
    assert "verified: 14 events, 1 checkpoints" in page
    sha = re.search(r'<span class="hash">([0-9a-f]{64})</span></td><td>\d+</td>', page)
    assert sha, "the checkpoint's sha256 is shown in full"


def test_report_says_when_verification_fails(
    kitchen: Kitchen, runs_db: None, home: Path, tmp_path: Path
) -> None:
    (home / "done" / "checkpoints" / "step-000001" / "weights.bin").write_bytes(b"changed")
    out = tmp_path / "done.html"
    r = kitchen("report", "done", "--out", str(out))
    assert r.code == 1
    assert "verification failed: checkpoint step-000001 (seq 6): sha256 mismatch" in r.stderr
    assert '<span class="bad">checkpoint step-000001 (seq 6): sha256 mismatch' in (out.read_text())


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


@pytest.mark.slow
def test_report_in_a_headless_browser(kitchen: Kitchen, runs_db: None, tmp_path: Path) -> None:
    browser = _chromium()
    if browser is None:
        if os.environ.get("CI"):
            pytest.fail("CI must install chromium (see .ci/run)")
        pytest.skip("no chromium on this machine (apt-get install chromium)")
    report = tmp_path / "again.html"
    _report(kitchen, "again", report)
    offline = [
        browser, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
        "--proxy-server=127.0.0.1:9", f"--user-data-dir={tmp_path / 'profile'}",
    ]  # fmt: skip
    dom = subprocess.run(
        [*offline, "--dump-dom", report.as_uri()],
        capture_output=True, text=True, timeout=120, check=True,
    ).stdout  # fmt: skip
    # The inline script ran and counted what was drawn.
    assert re.search(r'<body[^>]*data-charts="1"', dom), dom[:500]
    assert re.search(r'<body[^>]*data-attempts="2"', dom)
    line = re.search(r'<polyline class="line" data-run="again"[^>]*points="([^"]+)"', dom)
    assert line and len(line[1].split()) == 2  # steps 0 and 1 of the effective history
    assert dom.count('class="attempt"') == 2

    shot = tmp_path / "again.png"
    subprocess.run(
        [*offline, f"--screenshot={shot}", "--window-size=1000,1400", report.as_uri()],
        capture_output=True, timeout=120, check=True,
    )  # fmt: skip
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    image = pytest.importorskip("PIL.Image", reason="pixel checks need Pillow")
    with image.open(shot) as im:
        colors = {c for _, c in im.convert("RGB").getcolors(maxcolors=1 << 20) or ()}
    assert (0xD6, 0x27, 0x28) in colors  # attempt 1's bar (crashed): red
    assert (0xFF, 0x7F, 0x0E) in colors  # attempt 2's bar (interrupted): orange


def test_long_series_are_thinned_for_the_page() -> None:
    from kitchen.cli._svg import thin

    points = [(i, float(i)) for i in range(10_001)]
    kept = thin(points, 1000)
    assert kept[:3] == [(0, 0.0), (11, 11.0), (22, 22.0)]  # stride ceil(10001 / 1000) = 11
    assert kept[-1] == (10_000, 10_000.0)  # the last step is always drawn
    assert len(kept) == 911
    assert thin(points[:5], 1000) == points[:5]
