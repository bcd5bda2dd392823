"""report.html: inline plots drawn from metrics.json, the CI method said, and a grid a long trial id cannot break."""

import html
import json
import math
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from html.parser import HTMLParser

import numpy as np
import pytest
from eval_fixtures import noisy, smooth_image, tiny_backbones, write_image

from ttdnet import ranking
from ttdnet.eval.api import evaluate
from ttdnet.eval.command import EvaluateConfig
from ttdnet.eval.metric_entries import score_range


LONG_ID = "trial_" + "x" * 194  # 200 characters, no space to break at
SVG = "{http://www.w3.org/2000/svg}"
BROWSER = next(
    (shutil.which(name) for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
     if shutil.which(name)),
    None,
)  # fmt: skip


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory):
    """10 trials, one sample each, one trial id of 200 characters; identification metrics on small backbones."""
    root = tmp_path_factory.mktemp("report")
    rng = np.random.default_rng(0)
    for i in range(10):
        name = LONG_ID if i == 3 else f"img{i}"
        image = smooth_image(rng, 40)
        write_image(root / "gt" / f"{name}.png", image)
        write_image(root / "rec" / f"{name}.png", noisy(rng, image, 0.3))
    config = EvaluateConfig(
        ground_truth=str(root / "gt"),
        reconstructions=str(root / "rec"),
        output_dir=str(root / "out"),
        metrics=["mse", "pcc", "clip", "nway_clip"],
        eval_size=32,
        nway_clip_ns=[2, 4],
        device="cpu",
        progress=False,
        download_weights=False,
    )
    _, document = evaluate(config, backbones=dict(tiny_backbones()), log=lambda _: None)
    return root / "out", document


def svgs(page: str) -> list[ET.Element]:
    return [ET.fromstring(svg) for svg in re.findall(r"<svg\b.*?</svg>", page, flags=re.S)]


def by_id(svg: ET.Element, gid: str) -> ET.Element:
    return next(group for group in svg.iter(f"{SVG}g") if group.get("id") == gid)


def path_points(group: ET.Element) -> np.ndarray:
    """The (x, y) vertices of the first path in an SVG group."""
    numbers = [float(v) for v in re.findall(r"-?\d+(?:\.\d+)?", group.find(f"{SVG}path").get("d"))]
    return np.array(numbers).reshape(-1, 2)


def test_identification_histograms_show_every_score_with_its_chance_and_mean(evaluated):
    out, document = evaluated
    page = (out / "report.html").read_text()
    histograms = next(svg for svg in svgs(page) if any(g.get("id") == "frame-clip" for g in svg.iter(f"{SVG}g")))
    keys = [key for key in document["per_trial"]["scores"] if document["metrics"][key]["chance"] is not None]
    assert set(keys) == {"clip", "pairid_mse", "pairid_pcc", "nway_clip_top1_2way", "nway_clip_top1_4way",
                         "nway_clip_top1_10way"}  # fmt: skip
    for key in keys:
        scores = np.array(document["per_trial"]["scores"][key], dtype=np.float64)
        frame = path_points(by_id(histograms, f"frame-{key}"))[:, 0]  # the plot area; its x axis is [0, 1]
        chance = path_points(by_id(histograms, f"chance-{key}"))[0, 0]
        mean = path_points(by_id(histograms, f"mean-{key}"))[0, 0]
        assert (chance - frame.min()) / np.ptp(frame) == pytest.approx(document["metrics"][key]["chance"], abs=1e-4)
        assert (mean - frame.min()) / np.ptp(frame) == pytest.approx(scores.mean(), abs=1e-4)
        counts, _ = np.histogram(scores, bins=20, range=(0.0, 1.0))
        heights = np.array([np.ptp(path_points(by_id(histograms, f"bin-{key}-{i}"))[:, 1]) for i in range(20)])
        np.testing.assert_allclose(heights / heights.max(), counts / counts.max(), atol=1e-4)


def test_nway_plot_and_a_self_contained_page(evaluated):
    out, _ = evaluated
    page = (out / "report.html").read_text()
    nway = next(svg for svg in svgs(page) if any(g.get("id") == "axes-kway" for g in svg.iter(f"{SVG}g")))
    chance = path_points(by_id(nway, "chance-t1"))
    # x is affine in log2(n) and y affine in the value: with the ends at n = 2 and n = 10 (the smallest and
    # largest n), every point of the dashed line must sit at 1/n.
    n = 2 ** np.interp(chance[:, 0], [chance[0, 0], chance[-1, 0]], [1.0, math.log2(10)])
    expected_y = np.interp(1 / n, [0.1, 0.5], [chance[-1, 1], chance[0, 1]])
    np.testing.assert_allclose(chance[:, 1], expected_y, atol=0.01)
    assert len(chance) > 10 and chance[0, 1] < chance[-1, 1]  # SVG y grows downward: 1/n falls
    texts = {text.text for text in nway.iter(f"{SVG}text")}
    assert {"2", "4", "10"} <= texts and "chance 1/n" in texts
    assert "<img" not in page.split('class="row"')[0]  # the plots are inline SVG, not files
    assert not re.search(r'(?:src|href)="(?!data:|#)', page)  # nothing is fetched from outside the file


def test_intervals_stay_in_range_and_say_which_method(evaluated):
    out, document = evaluated
    metrics = json.loads((out / "metrics.json").read_text())["metrics"]
    for key, entry in metrics.items():
        if entry["ci95"] is None:
            continue
        low, high = score_range(key)
        assert low <= entry["ci95"][0] <= entry["value"] <= entry["ci95"][1] <= high, key
        expected = "wilson" if key == "nway_clip_top1_10way" else "bootstrap"  # 10-way of 10 trials: top-1
        assert entry["ci95_method"] == expected, key
    full = metrics["nway_clip_top1_10way"]
    assert full["ci95"] == pytest.approx(list(ranking.wilson_interval(full["value"], 10)), abs=1e-12)
    assert metrics["mse"]["ci95_settings"] == {"resamples": 2000, "seed": 0, "range": [0.0, None]}
    markdown = (out / "report.md").read_text()
    assert "| 95% CI | CI method |" in markdown
    assert "Wilson = Wilson score interval" in markdown and "2000 resamples, numpy default_rng(0)" in markdown
    row = next(line for line in markdown.splitlines() if "`nway_clip_top1_10way`" in line)
    assert "| Wilson |" in row
    assert "<th>CI method</th>" in (out / "report.html").read_text()


class Grid(HTMLParser):
    """Per ``.row``: the label's title, the trial id and score shown in it, the figure captions and alt texts."""

    def __init__(self):
        super().__init__()
        self.rows, self.where = [], None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if attrs.get("class") == "row":
            self.rows.append({"title": None, "trial": "", "score": "", "captions": [], "alts": []})
        elif attrs.get("class") == "label":
            self.rows[-1]["title"] = attrs["title"]
        elif attrs.get("class") in ("trial", "score"):
            self.where = attrs["class"]
        elif tag == "figcaption":
            self.rows[-1]["captions"].append("")
            self.where = "caption"
        elif tag == "img" and self.rows:
            self.rows[-1]["alts"].append(attrs["alt"])

    def handle_endtag(self, tag):
        if tag in ("div", "figcaption"):
            self.where = None

    def handle_data(self, data):
        if self.where == "caption":
            self.rows[-1]["captions"][-1] += data
        elif self.where:
            self.rows[-1][self.where] += data


def test_a_long_trial_id_wraps_in_its_label_and_leaves_the_images_in_line(evaluated):
    out, document = evaluated
    page = (out / "report.html").read_text()
    grid = Grid()
    grid.feed(page)
    assert len(grid.rows) == 10 + 2 * 5  # the grid, then the 5 best and 5 worst by CLIP 2-way
    assert [row["trial"] for row in grid.rows[:10]] == document["per_trial"]["trial_ids"]
    long_rows = [row for row in grid.rows if row["trial"] == LONG_ID]
    assert long_rows[0]["title"] == LONG_ID and long_rows[0]["score"] == ""
    # Best and worst rows show the score in its own line, outside the clamped id, and in the title.
    clip = document["per_trial"]["scores"]["clip"]
    ids = document["per_trial"]["trial_ids"]
    for row in grid.rows[10:]:
        assert (
            row["score"] == f"{clip[ids.index(row['trial'])]:.4f}"
            and row["title"] == f"{row['trial']}: {row['score']}"
        )
    # The id is in the label (a fixed-width box that wraps anywhere) and the alt text, never in a caption,
    # where it would widen its figure and push the images of that row out of line.
    assert all(caption in ("GT", "sample 0") for row in grid.rows for caption in row["captions"])
    assert any(LONG_ID in alt for alt in long_rows[0]["alts"])
    style = re.search(r"<style>(.*?)</style>", page, flags=re.S).group(1)
    rules = dict(re.findall(r"([.\w]+)\{([^}]*)\}", style))
    assert {"flex:0 0 16em", "width:16em", "overflow-wrap:anywhere"} <= set(rules[".label"].split(";"))
    assert {"overflow:hidden", "-webkit-line-clamp:4", "line-clamp:4"} <= set(rules[".trial"].split(";"))
    assert {"flex:0 0 128px", "width:128px"} <= set(rules["figure"].split(";"))
    assert {"overflow:hidden", "text-overflow:ellipsis", "white-space:nowrap"} <= set(rules["figcaption"].split(";"))


def test_the_command_line_does_not_import_matplotlib():
    code = "import sys, ttdnet.cli, ttdnet.eval.outputs; print('matplotlib' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout == "False\n"


MEASURE = """<script>
window.addEventListener("load", () => {
  const left = (e) => Math.round(e.getBoundingClientRect().left);
  const rows = [...document.querySelectorAll(".row")].map((r) => [...r.querySelectorAll("figure")].map(left));
  const labels = [...document.querySelectorAll(".label")].map((l) => l.getBoundingClientRect().width);
  const plots = [...document.querySelectorAll(".plot svg")].map((s) => s.getBoundingClientRect().width);
  const pre = document.createElement("pre");
  pre.id = "layout";
  pre.textContent = JSON.stringify({rows, labels, plots, width: document.documentElement.scrollWidth});
  document.body.appendChild(pre);
});
</script>"""


@pytest.mark.skipif(BROWSER is None, reason="no Chromium or Chrome installed for a headless check")
def test_in_a_headless_browser_the_images_line_up_and_the_plots_render(evaluated, tmp_path):
    out, _ = evaluated
    page = tmp_path / "measured.html"
    page.write_text((out / "report.html").read_text().replace("</body>", MEASURE + "</body>"))
    flags = [BROWSER, "--headless", "--disable-gpu", "--no-sandbox", "--window-size=1280,3000"]
    dom = subprocess.run([*flags, "--virtual-time-budget=10000", "--dump-dom", page.as_uri()],
                         capture_output=True, text=True, timeout=180)  # fmt: skip
    found = re.search(r'<pre id="layout">(.*?)</pre>', dom.stdout, flags=re.S)
    assert found, dom.stderr[-2000:]
    layout = json.loads(html.unescape(found.group(1)))
    assert len(layout["rows"]) >= 10 and len({tuple(row) for row in layout["rows"]}) == 1  # same columns in every row
    assert max(layout["labels"]) - min(layout["labels"]) < 0.5
    assert len(layout["plots"]) == 2 and min(layout["plots"]) > 100
    assert layout["width"] <= 1280  # nothing forces a horizontal scroll
    shot = tmp_path / "report.png"
    subprocess.run([*flags, f"--screenshot={shot}", (out / "report.html").as_uri()], capture_output=True, timeout=180)
    from PIL import Image

    pixels = np.asarray(Image.open(shot).convert("L"))
    assert pixels.std() > 1 and not math.isnan(pixels.mean())
