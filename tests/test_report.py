"""``curate report``: structure, escaping of data-derived text, and the page in headless
Chromium (Debian's ``chromium``; ``.ci/run`` installs it)."""

from __future__ import annotations

import shutil
from html.parser import HTMLParser
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from conftest import ARTIFACTS, needs_shared
from synth import synthetic_output

from curate.cli import main
from curate.report import render_report

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"

CAPTION = "<script>alert(1)</script>"
EVIL_NAME = '"><img src=x onerror=alert(2)>.mp4'
EVIL_INPUT = "<svg onload=alert(3)>.mp4"


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    return synthetic_output(tmp_path_factory.mktemp("report") / "out", 240)


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).is_file():
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield browser
        browser.close()


class Page:
    """A report opened in the browser, with everything it said and tried."""

    def __init__(self, browser, path: Path) -> None:
        self.page = browser.new_page(viewport={"width": 1400, "height": 900})
        self.console: list[str] = []
        self.errors: list[str] = []
        self.dialogs: list[str] = []
        self.page.on("console", lambda m: self.console.append(f"{m.type}: {m.text}"))
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("dialog", self._dialog)
        self.page.goto(path.resolve().as_uri(), wait_until="load")

    def _dialog(self, dialog) -> None:
        self.dialogs.append(dialog.message)
        dialog.dismiss()

    def count(self, selector: str) -> int:
        return self.page.eval_on_selector_all(selector, "els => els.length")

    def loaded(self, selector: str) -> int:
        """How many images under ``selector`` decoded (width > 0)."""
        return self.page.eval_on_selector_all(
            selector, "els => els.filter(i => i.complete && i.naturalWidth > 0).length"
        )


class Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict]] = []

    def handle_starttag(self, tag, attrs) -> None:
        self.tags.append((tag, dict(attrs)))


def test_report_sections_and_charts(synthetic):
    page = render_report(synthetic, examples=5)
    parser = Tags()
    parser.feed(page)
    tags = parser.tags
    csp = [a for t, a in tags if t == "meta" and a.get("http-equiv") == "Content-Security-Policy"]
    assert csp and "default-src 'none'" in csp[0]["content"]
    assert "script" not in {t for t, _ in tags}
    sections = [a["id"] for t, a in tags if t == "section"]
    assert sections == [
        "overview",
        "funnel",
        "scores",
        "clusters",
        "tiers",
        "rejects",
        "duplicates",
    ]
    charts = [a for t, a in tags if t == "img" and a["src"].startswith("data:image/png;base64,")]
    # Funnel, one histogram per gated measure and per other score with values, cluster sizes.
    assert {"funnel: inputs to tiers", "histogram of sharpness"} <= {a["alt"] for a in charts}
    assert "cluster sizes before and after re-balancing" in {a["alt"] for a in charts}
    thumbs = [a for t, a in tags if t == "img" and a["src"].startswith("data:image/jpeg;base64,")]
    assert len(thumbs) > 20
    for text in (
        "tier loose: ",
        "tier strict: ",
        "gate min_sharpness",
        "blurry: ",
        "duplicate: ",
        "unreadable: ",
        "cosine 0.970",
        "cluster 7: ",
        "(no caption)",
        "a synthetic clip of a grey square",
    ):
        assert text in page, text


def plant(output: Path, old_source: str, new_source: str, caption: str) -> None:
    """Rename a source in every table and give its tier rows ``caption`` as caption and
    prompt: data a hostile uploader could control."""
    for path in output.glob("**/part-*.parquet"):
        table = pq.read_table(path)
        renamed = pc.if_else(pc.equal(table["source"], old_source), new_source, table["source"])
        table = table.set_column(table.schema.get_field_index("source"), "source", renamed)
        if "caption" in table.column_names:
            mine = pc.equal(table["source"], new_source)
            for name in ("caption", "prompt"):
                column = pc.if_else(mine, pa.scalar(caption), table[name])
                table = table.set_column(table.schema.get_field_index(name), name, column)
        pq.write_table(table, path)


def test_report_shows_hostile_data_as_text(synthetic, browser, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(synthetic, out)
    strict = pq.read_table(out / "tiers" / "strict", columns=["source"])["source"]
    plant(out, strict[0].as_py(), f"/data/videos/{EVIL_NAME}", CAPTION)
    plant(out, "/data/videos/broken0.mp4", f"/data/{EVIL_INPUT}", CAPTION)
    target = tmp_path / "report.html"
    assert main(["report", str(out), "--html", str(target), "--examples", "400"]) == 0
    raw = target.read_text()
    assert CAPTION not in raw and EVIL_NAME not in raw and EVIL_INPUT not in raw
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in raw

    page = Page(browser, target)
    assert page.dialogs == [] and page.errors == []
    assert page.count("script, svg, [onerror], [onload]") == 0
    text = page.page.inner_text("body")
    assert CAPTION in text  # the caption, shown as text
    assert EVIL_NAME in text  # the file name, shown as text
    assert EVIL_INPUT in page.page.inner_text("#rejects")  # a failed input's name
    assert page.console == []


def test_report_cli_errors(tmp_path, capsys):
    assert main(["report", str(tmp_path)]) == 2
    assert "holds no manifest.json" in capsys.readouterr().err


@needs_shared
def test_report_of_real_run_in_browser(shared_run, browser, tmp_path):
    out, _, _ = shared_run
    target = tmp_path / "report.html"
    assert main(["report", str(out), "--html", str(target)]) == 0
    page = Page(browser, target)
    ARTIFACTS.mkdir(exist_ok=True)
    screenshot = ARTIFACTS / "report-shared-run.png"
    page.page.screenshot(path=str(screenshot), full_page=True)
    print(f"report screenshot: {screenshot}")
    assert page.errors == [] and page.dialogs == []
    assert [m for m in page.console if m.startswith("error")] == []
    assert page.loaded("#funnel img.chart") == page.count("#funnel img.chart") == 1
    histograms = page.count("#scores figure.histogram img")
    assert histograms >= 8 and page.loaded("#scores figure.histogram img") == histograms
    thumbs = page.count("figure.thumb img")
    assert thumbs > 20 and page.loaded("figure.thumb img") == thumbs
    text = page.page.inner_text("body")
    assert "tier default: " in text and "gate min_sharpness" in text
    assert "rabbit320.mp4" in page.page.inner_text("#duplicates")
