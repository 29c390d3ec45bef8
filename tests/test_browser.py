"""Open the rendered report in headless Chromium: it renders the ledger, with no errors."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from fake_results import write_fake_results

from kdrepro.report.render import render_report

pytestmark = pytest.mark.browser

TEMPLATES = Path(__file__).resolve().parents[1] / "templates"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or "/usr/bin/chromium"
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--hide-scrollbars", "--host-resolver-rules=MAP * ~NOTFOUND")


def _chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    profile = tmp_path / "profile"
    command = [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)


@pytest.fixture(scope="module")
def report_url(tmp_path_factory) -> str:
    if not Path(CHROMIUM).is_file():
        pytest.skip(f"chromium not installed ({CHROMIUM}); apt-get install chromium")
    root = tmp_path_factory.mktemp("browser")
    results = write_fake_results(root / "results")
    render_report(results, TEMPLATES, root / "reports")
    return (root / "reports" / "report.html").as_uri()


def test_dom_has_the_ledger_and_no_console_errors(report_url, tmp_path):
    run = _chromium(tmp_path, "--enable-logging=stderr", "--v=0", "--dump-dom", report_url)
    assert run.returncode == 0, run.stderr[-2000:]
    dom = run.stdout
    assert '<table class="ledger" id="ledger-table">' in dom
    assert dom.count('<tr id="claim-') == 18
    assert 'class="verdict reproduced"' in dom
    console = [line for line in run.stderr.splitlines() if "CONSOLE" in line or "Uncaught" in line]
    assert not console, console
    assert "Refused to" not in run.stderr  # nothing blocked by the page's CSP


def test_screenshot(report_url, tmp_path):
    artifacts = Path(os.environ.get("KDREPRO_ARTIFACTS") or tmp_path)
    artifacts.mkdir(parents=True, exist_ok=True)
    shot = artifacts / "report.png"
    run = _chromium(tmp_path, "--window-size=1280,2400", f"--screenshot={shot}", report_url)
    assert run.returncode == 0, run.stderr[-2000:]
    assert shot.read_bytes().startswith(b"\x89PNG") and shot.stat().st_size > 20_000
