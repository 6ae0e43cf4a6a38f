"""``curate report``: structure, escaping of data-derived text, and the page in headless
Chromium (Debian's ``chromium``; ``.ci/run`` installs it)."""

from __future__ import annotations

import json
import re
import shutil
from collections import defaultdict
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest
from conftest import ARTIFACTS, needs_shared

from curate import contract, schema
from curate.cli import main
from curate.output.record import Manifest
from curate.report import render_report
from curate.report.charts import GREY, bars, histogram
from scripts.common.synth import (
    SYNTH_TIERS,
    still_frames,
    synthetic_output,
    textured_image,
    write_video,
)

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"

CAPTION = "<script>alert(1)</script>"
EVIL_NAME = '"><img src=x onerror=alert(2)>.mp4'
EVIL_INPUT = "<svg onload=alert(3)>.mp4"

SPAN = re.compile(r"^\d+\.\d–\d+\.\d s$")
CLIP_ID = re.compile(r"\b[0-9a-f]{16}\b")


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    return synthetic_output(tmp_path_factory.mktemp("report") / "out", 240)


@pytest.fixture(scope="module")
def exported(synthetic, tmp_path_factory):
    """The synthetic output as a run with ``export.mode: files`` leaves it: every tier row's
    clip exported under ``clips/`` (``clip_path`` relative to the output), in a folder whose
    name needs quoting in a URL. Besides, one input was read but too short to yield a clip,
    and the strict tier has a percentile gate, an on/off gate and a ``max_motion`` far above
    every clip's motion (none changes who passes)."""
    out = tmp_path_factory.mktemp("exported") / "run #1 ü"
    shutil.copytree(synthetic, out)
    frames = still_frames(textured_image(3, 96, 128), 12, size=(96, 128))
    clip = write_video(tmp_path_factory.mktemp("clip") / "clip.mp4", frames, fps=12)
    for path in out.glob("tiers/*/part-*.parquet"):
        table = pq.read_table(path)
        paths = [f"clips/synthetic/{c[:2]}/{c}.mp4" for c in table["clip_id"].to_pylist()]
        for rel in paths:
            (out / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(clip, out / rel)
        index = table.schema.get_field_index("clip_path")
        pq.write_table(table.set_column(index, "clip_path", pa.array(paths, pa.string())), path)
    (part,) = out.glob("rejects/part-*.parquet")
    short = contract.reject_row("/data/videos/short.mp4", "probe", "too_short", "duration 2.00 s")
    rejects = pa.concat_tables([pq.read_table(part), schema.from_rows([short], schema.REJECTS)])
    pq.write_table(rejects, part)
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["inputs"]["discovered"] += 1
    for stage in ("discover", "probe"):
        manifest["funnel"][stage]["in"] += 1
    manifest["funnel"]["discover"]["out"] += 1
    manifest["funnel"]["probe"]["rejected"]["too_short"] = 1
    manifest["rejects"]["too_short"] = 1
    strict = manifest["funnel"]["tiers"]["thresholds"]["strict"]
    strict.update(reject_slideshow=True, max_motion=1.5)
    # As configured: a percentile, resolved to the synthetic threshold.
    manifest["config"]["tiers"][1]["gates"]["min_sharpness"] = "p70"
    (out / "manifest.json").write_text(json.dumps(manifest))
    return out


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


class Doc(HTMLParser):
    """A report's structure per section: tags, text, tables (rows of cell texts) and the
    lines under each thumbnail."""

    def __init__(self, page: str) -> None:
        super().__init__()
        self.section = ""
        self.tags: dict[str, list[tuple[str, dict]]] = defaultdict(list)
        self.text: dict[str, str] = defaultdict(str)
        self.tables: dict[str, list[list[list[str]]]] = defaultdict(list)
        self.captions: dict[str, list[list[str]]] = defaultdict(list)
        self._cell: list[str] | None = None
        self._caption: list[str] | None = None
        self.feed(page)

    def handle_starttag(self, tag, attrs) -> None:
        attrs = dict(attrs)
        if tag == "section":
            self.section = attrs["id"]
        self.tags[self.section].append((tag, attrs))
        if tag == "table":
            self.tables[self.section].append([])
        elif tag == "tr":
            self.tables[self.section][-1].append([])
        elif tag in ("td", "th"):
            self._cell = []
        elif tag == "figcaption":
            self._caption = [""]
        elif tag == "br" and self._caption is not None:
            self._caption.append("")

    def handle_endtag(self, tag) -> None:
        if tag in ("td", "th"):
            self.tables[self.section][-1][-1].append("".join(self._cell))
            self._cell = None
        elif tag == "figcaption":
            self.captions[self.section].append(self._caption)
            self._caption = None

    def handle_data(self, data) -> None:
        self.text[self.section] += data
        if self._cell is not None:
            self._cell.append(data)
        if self._caption is not None:
            self._caption[-1] += data

    def table(self, section: str, corner: str) -> dict[str, list[str]]:
        """The table of ``section`` whose top-left header is ``corner``, by row label; the
        header row is under ``corner`` too."""
        (rows,) = [t for t in self.tables[section] if t[0][0] == corner]
        return {row[0]: row[1:] for row in rows}

    def images(self, section: str) -> dict[str, dict]:
        return {a["alt"]: a for t, a in self.tags[section] if t == "img" and "alt" in a}


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
    # Funnels, one histogram per gated measure and per other score with values, cluster sizes.
    assert {
        "inputs funnel: discovered, readable, yielded clips",
        "clips funnel per tier: gates to tier folders",
        "histogram of sharpness",
    } <= {a["alt"] for a in charts}
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


def test_report_funnel_per_unit_and_tier(exported):
    """Inputs are counted as files, clips per tier; an input read but too short to yield a
    clip is readable, and each tier's gates are labelled with their tier."""
    doc = Doc(render_report(exported, examples=5))
    manifest = Manifest.read(exported)
    names = list(SYNTH_TIERS)
    analysis = ds.dataset(exported / "analysis").to_table(columns=["source", "tier"])
    sources = len(set(analysis["source"].to_pylist()))

    inputs = doc.table("funnel", "step")
    assert inputs["discovered"][0] == str(manifest.inputs.discovered) == str(sources + 3)
    assert inputs["readable"] == [str(sources + 1), "unreadable 2"]
    assert inputs["yielded ≥ 1 clip"] == [str(sources), "too_short 1"]

    clips = doc.table("funnel", "clips")
    assert clips["clips"] == [f"tier {name}" for name in names]
    tiers = analysis["tier"].to_pylist()
    assert clips["candidate clips"] == [str(len(tiers))] * 2
    passed = [sum(t in names[k:] for t in tiers) for k in range(len(names))]
    assert clips["passed gates"] == [str(n) for n in passed]
    steps = ["passed gates", "after dedup", "after re-balancing", "exported"]
    assert [label for label in clips if label in steps] == steps
    for k in range(len(names)):
        counts = [int(clips[label][k]) for label in steps]
        assert counts == sorted(counts, reverse=True)
    # The loosest tier's column is the manifest's funnel; the last step fills the folders.
    for stage, label in [("dedup", "after dedup"), ("rebalance", "after re-balancing")]:
        assert clips[label][0] == str(manifest.stage(stage).out)
    sizes = [str(manifest.tiers[name].clips) for name in names]
    assert clips["exported"] == clips["in the tier folder"] == sizes

    gates = doc.table("funnel", "gate")
    assert gates["gate"] == [f"tier {name}: threshold" for name in names]
    assert gates["gate min_sharpness"] == ["20", "p70 (100)"]
    assert gates["gate reject_slideshow"] == ["–", "on"]
    assert gates["gate max_motion"] == ["–", "1.5"]
    assert list(gates)[1:] == ["gate min_sharpness", "gate max_motion", "gate reject_slideshow"]
    assert doc.images("funnel").keys() == {
        "inputs funnel: discovered, readable, yielded clips",
        "clips funnel per tier: gates to tier folders",
    }


def test_report_values_as_people_read_them(exported):
    """Booleans as on/off, counts as whole numbers; constant columns as one line each."""
    doc = Doc(render_report(exported, examples=5))
    overview = doc.table("overview", "tier")
    thresholds = overview["strict"][2]
    assert "reject_slideshow=on" in thresholds and "max_motion=1.5" in thresholds
    assert "min_sharpness=p70 (100)" in thresholds
    for name in SYNTH_TIERS:
        assert overview[name][0].isdigit()
    rejects = doc.table("overview", "reject reason")
    assert rejects.pop("reject reason") == ["rows"]
    assert rejects == {reason: [str(n)] for reason, n in Manifest.read(exported).rejects.items()}

    analysis = ds.dataset(exported / "analysis").to_table(columns=["sample_weight"])
    weights = analysis["sample_weight"]
    charts = doc.images("scores")
    assert "histogram of sharpness" in charts
    assert "histogram of border_top" not in charts and "histogram of largest border" not in charts
    assert "histogram of sample_weight" not in charts
    constant = [a for t, a in doc.tags["scores"] if t == "p" and a.get("class") == "constant"]
    assert len(constant) == 2
    text = doc.text["scores"]
    assert f"largest border, border_top: all 0 over {len(weights):,} clips" in text
    assert (
        f"sample_weight: all 1 over {len(weights) - weights.null_count:,} clips "
        f"({weights.null_count:,} without a value)"
    ) in text


def test_histogram_axes_fit_the_data():
    """The axis spans the data, not a threshold far from them (named at the edge instead);
    count axes have whole-number ticks."""
    rng = np.random.default_rng(0)
    motion = rng.uniform(0, 0.22, 40)
    marks = [("loose", "min_motion", 0.01, "C0"), ("strict", "max_motion", 1.5, "C1")]
    ax = histogram("motion_score", motion, motion > 0.02, marks).axes[0]
    low, high = ax.get_xlim()
    assert low <= motion.min() and motion.max() <= high < 1.2 * motion.max()
    assert [t.get_text() for t in ax.texts] == ["strict: max_motion 1.5 →"]
    assert [line.get_xdata()[0] for line in ax.get_lines()] == [0.01]
    assert all(t == int(t) for t in ax.get_yticks())
    # A threshold just beyond the data widens the axis to show it.
    ax = histogram("motion_score", motion, motion > 0, [("a", "max_motion", 0.25, "C0")]).axes[0]
    assert 0.25 < ax.get_xlim()[1] < 0.3 and len(ax.texts) == 0
    # Small counts: one bar per whole number, whole-number ticks on both axes.
    faces = np.array([0, 0, 1, 2, 2, 2, 1, 0, 0])
    ax = histogram("faces", faces, faces < 2, [("a", "max_faces", 1, "C0")]).axes[0]
    assert all(t == int(t) for t in [*ax.get_xticks(), *ax.get_yticks()])
    assert ax.get_xlim()[0] > -1 and ax.get_xlim()[1] < 3
    funnel = bars([("inputs", [(3, GREY)]), ("readable", [(2, GREY)])], "input files", [])
    assert all(t == int(t) for t in funnel.axes[0].get_xticks())


def test_report_names_clips_by_file_and_span(synthetic):
    doc = Doc(render_report(synthetic, examples=5))
    clusters = doc.captions["clusters"]
    assert len(clusters) > 20
    for lines in clusters:
        assert lines[0].endswith(".mp4") and SPAN.match(lines[1]), lines
    # Clips of one file are told apart by their spans.
    labels = [(lines[0], lines[1]) for lines in clusters]
    assert len(set(labels)) == len(labels)
    assert all(SPAN.match(lines[1].split(" · ")[0]) for lines in doc.captions["tiers"])

    groups: list[list[list[str]]] = []
    for lines in doc.captions["duplicates"]:
        if lines[2] == "kept":
            groups.append([])
        groups[-1].append(lines)
    assert groups and all(len(g) >= 2 for g in groups)
    for kept, *copies in groups:
        for lines in copies:
            assert lines[2].endswith(f" with {kept[0]} {kept[1]}"), lines
    # No clip is named by its hash, here or among the rejected examples.
    assert not CLIP_ID.search(doc.text["duplicates"]) and not CLIP_ID.search(doc.text["rejects"])


def videos(page: str, page_dir: Path) -> list[tuple[dict, Path]]:
    """The page's ``<video>`` elements and the files their ``src`` resolves to."""
    tags = Doc(page).tags["tiers"]
    return [(a, (page_dir / unquote(a["src"])).resolve()) for t, a in tags if t == "video"]


def test_report_plays_exported_clips(exported, tmp_path):
    """Contact sheets play the exported clips, linked relative to wherever the page is."""
    for target in (None, tmp_path / "elsewhere" / "deeper" / "report.html"):
        args = ["report", str(exported), "--examples", "6"]
        assert main(args + (["--html", str(target)] if target else [])) == 0
        page_dir = target.parent if target else exported
        page = (target or exported / "report.html").read_text()
        found = videos(page, page_dir)
        assert len(found) == 6 * len(SYNTH_TIERS)
        for attrs, path in found:
            assert "://" not in attrs["src"] and path.is_file(), attrs["src"]
            assert path.is_relative_to((exported / "clips").resolve())
            assert "controls" in attrs and attrs["preload"] in ("none", "metadata")
            assert attrs["poster"].startswith("data:image/jpeg;base64,")
        assert "<script" not in page
    (exported / "report.html").unlink()


def test_report_of_object_storage_shows_thumbnails(exported, tmp_path):
    """A local page cannot play clips in object storage: thumbnails instead, and it says so."""
    fsspec = pytest.importorskip("fsspec")
    fsspec.filesystem("memory").put(str(exported), "/report-test", recursive=True)
    page = render_report("memory://report-test", examples=4, page_dir=tmp_path)
    doc = Doc(page)
    assert [t for t, _ in doc.tags["tiers"] if t == "video"] == []
    assert sum(t == "img" for t, _ in doc.tags["tiers"]) == 4 * len(SYNTH_TIERS)
    assert "exported clips are in object storage" in doc.text["tiers"]


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


def test_report_in_browser_plays_clips(exported, browser, tmp_path):
    """In Chromium: every clip loads its metadata, captions wrap between words, and nothing
    is logged; a screenshot is left in ``test-artifacts``."""
    target = tmp_path / "view" / "report.html"
    assert main(["report", str(exported), "--html", str(target), "--examples", "6"]) == 0
    page = Page(browser, target)
    # Verification only: the report itself has no scripts.
    page.page.wait_for_function(
        "() => [...document.querySelectorAll('video')].every(v => v.readyState >= 1)",
        timeout=15_000,
    )
    assert page.count("video") == 6 * len(SYNTH_TIERS)
    assert page.page.eval_on_selector_all("video", "vs => vs.filter(v => v.error).length") == 0
    assert page.page.eval_on_selector_all(
        "video", "vs => vs.every(v => v.videoWidth === 128 && v.duration > 0.5)"
    )
    wrap = page.page.eval_on_selector("figure.thumb", "f => getComputedStyle(f).overflowWrap")
    assert wrap == "break-word"
    assert page.loaded("#funnel img.chart") == page.count("#funnel img.chart") == 2
    assert page.errors == [] and page.dialogs == [] and page.console == []
    ARTIFACTS.mkdir(exist_ok=True)
    screenshot = ARTIFACTS / "report-synthetic.png"
    page.page.screenshot(path=str(screenshot), full_page=True)
    print(f"report screenshot: {screenshot}")


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
    # Inputs, then clips per video tier, then images per image tier.
    assert page.loaded("#funnel img.chart") == page.count("#funnel img.chart") == 3
    assert "Images, per tier" in page.page.inner_text("#funnel")
    # The image tier's contact sheet shows the photographs themselves.
    sheet = page.page.locator("#tiers div.sheet.images")
    assert page.count("#tiers div.sheet.images img") >= 4
    assert page.loaded("#tiers div.sheet.images img") == page.count("#tiers div.sheet.images img")
    sheet.screenshot(path=str(ARTIFACTS / "report-image-sheet.png"))
    assert "tier images: " in page.page.inner_text("#tiers")
    histograms = page.count("#scores figure.histogram img")
    assert histograms >= 8 and page.loaded("#scores figure.histogram img") == histograms
    thumbs = page.count("figure.thumb img")
    assert thumbs > 20 and page.loaded("figure.thumb img") == thumbs
    # The exported clips play (the page is outside the output: links go up and over).
    assert page.count("#tiers video") == 12
    page.page.wait_for_function(
        "() => [...document.querySelectorAll('video')].every(v => v.readyState >= 1)",
        timeout=15_000,
    )
    text = page.page.inner_text("body")
    assert "tier default: " in text and "gate min_sharpness" in text
    assert "reject_slideshow=on" in text
    # The letterboxed photos beside the videos have bars: border_top has a distribution.
    assert "histogram of border_top" in page.page.content()
    duplicates = page.page.inner_text("#duplicates")
    assert "rabbit320.mp4" in duplicates
    # The merged pair's matched keyframes, with the evidence of the merge.
    assert page.loaded("#duplicates figure.match img") == page.count("#duplicates figure.match img")
    assert page.count("#duplicates figure.match img") >= 1  # the photos' copies have theirs
    assert "matched frames: kept clip left, rabbit320.mp4 right" in duplicates
    assert "keypoint matches agree" in duplicates and "s of the kept clip" in duplicates
    page.page.locator("#duplicates").screenshot(path=str(ARTIFACTS / "report-duplicates.png"))
