"""The HTML report (issue 8): structure and order, escaping, self-containment, saved files, several sections, and a
real browser (headless Chromium) that must load the page without console errors, sort numerically and paint it."""
from __future__ import annotations

import base64
import csv
import html
import math
import re
import shutil
import struct
import subprocess
import zlib
from html.parser import HTMLParser
from pathlib import Path

import pytest
import torch

from weightmem_fast.audit.result import (CLASSIFIER, FIELD, AuditResult, Behaviour, Estimate, Frontier, GroupAudit,
                                         Verdict)
from weightmem_fast.report import plain_reading, write_report

pytestmark = pytest.mark.usefixtures("one_torch_thread")

NASTY = "<script>alert(1)</script> & 'quotes\""
N_TRAIN, D, K = 6, 5, 2


def tiny_png(width: int = 64, height: int = 48) -> bytes:
    """A real RGB gradient PNG, built by hand so the tests need no imaging library to make figures."""
    rows = b"".join(b"\x00" + bytes(v for x in range(width) for v in (4 * x % 256, 5 * y % 256, 160))
                    for y in range(height))

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


PNG = tiny_png()


def group(name: str, role: str, weights: torch.Tensor, training: torch.Tensor, behaviour: Behaviour) -> GroupAudit:
    """A group whose distances really are its distances to ``training`` (self excluded for the training group)."""
    dist = torch.cdist(weights.double(), training.double())
    if role == "training":
        dist.fill_diagonal_(math.inf)
    nearest_l2, nearest_index = dist.topk(K, largest=False)
    n = weights.shape[0]
    metrics = {behaviour.quality: torch.rand(n), behaviour.similarity: torch.rand(n),
               behaviour.similarity_index: torch.randint(0, N_TRAIN, (n,))}
    return GroupAudit(name, role, weights, nearest_l2[:, 0].float(), nearest_index, nearest_l2.float(), metrics)


def estimate(value: float) -> Estimate:
    return Estimate(value, max(0.0, value - 0.1), value + 0.1, 0.95)


def make_result(generated: dict[str, int], behaviour: Behaviour = CLASSIFIER) -> AuditResult:
    """A consistent audit: training, a far "noise" baseline (distances > 10, so text sort differs from numeric
    sort) and the named generated groups of the given sizes, half of each a near-copy of a training model."""
    training = torch.randn(N_TRAIN, D)
    weights = {"training": training, "noise 10.0": training + 10 * torch.randn(N_TRAIN, D)}
    roles = {"training": "training", "noise 10.0": "baseline"}
    for name, n in generated.items():
        # distances from 1e-2 down to 1e-5: some print as "1.23e-05", which no text sort orders right
        scale = 10.0 ** -(2 + torch.arange(n) % 4)
        copies = training[torch.arange(n) % N_TRAIN] + scale[:, None] * torch.randn(n, D)
        weights[name] = torch.where(torch.arange(n)[:, None] % 2 == 0, copies, torch.randn(n, D))
        roles[name] = "generated"
    groups = {name: group(name, roles[name], w, training, behaviour) for name, w in weights.items()}
    threshold = float(groups["training"].min_l2.quantile(0.05))
    per_model, verdicts = {}, {}
    for name in generated:
        near = groups[name].min_l2 <= threshold
        beyond = torch.arange(len(groups[name])) % 3 == 0
        per_model[name] = {"beyond_frontier": beyond, "near_copy": near}
        ratio = float(groups[name].min_l2.mean() / groups["training"].min_l2.mean())
        verdicts[name] = Verdict(name, estimate(float(beyond.float().mean())), estimate(float(near.float().mean())),
                                 estimate(ratio), {"min_l2": threshold, "similarity": 0.9})
    group_metrics = {name: {"mmd": 0.01, "cov": 0.5, "1-nna": 0.7} for name in generated} \
        if behaviour is FIELD else {}
    return AuditResult(behaviour, groups, Frontier((0.01, 0.1), (0.9, 0.5), (0.8, 0.6)), verdicts, per_model,
                       group_metrics, {"k": K, "sigmas": [0.01, 0.1], "seed": 0, "bootstrap": {"samples": 200}},
                       {"weightmem_fast": "test", "torch": torch.__version__})


def two_figures(result: AuditResult, task: object) -> dict[str, bytes]:
    return {"frontier <plot>": PNG, f"{result.behaviour.kind} novelty": PNG}


@pytest.fixture(scope="module")
def single(tmp_path_factory) -> tuple[AuditResult, Path]:
    """One audit (a nasty generated group name included) written by ``AuditResult.report``."""
    torch.manual_seed(1)
    result = make_result({NASTY: 8, "hr": 6})
    path = result.report(tmp_path_factory.mktemp("single"), figures=two_figures, title="Audit <1>")
    return result, path


class Html5Checker(HTMLParser):
    """Collects tags, checks that every non-void element is closed in order, and records src/href values."""

    VOID = {"meta", "img", "br", "hr", "link", "input", "col", "source", "wbr", "area", "base", "embed", "track"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.urls: list[str] = []
        self.scripts = 0

    def handle_starttag(self, tag, attrs):
        self.urls += [value or "" for key, value in attrs if key in ("src", "href")]
        self.scripts += tag == "script"
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        if not self.stack or self.stack.pop() != tag:
            self.errors.append(f"unexpected </{tag}>")


def parse(text: str) -> Html5Checker:
    checker = Html5Checker()
    checker.feed(text)
    checker.close()
    return checker


def test_report_is_one_wellformed_self_contained_page(single):
    result, path = single
    text = path.read_text(encoding="utf-8")
    assert path.name == "report.html"
    assert text.startswith("<!DOCTYPE html>") and '<meta charset="utf-8">' in text
    checker = parse(text)
    assert checker.errors == [] and checker.stack == []
    assert checker.scripts == 1  # the page's own sort script; the nasty name is text
    # Nothing from the network: no http(s) anywhere, and every src/href is a data URI, an anchor or a local file.
    assert re.search(r"https?:|//", " ".join(checker.urls)) is None
    assert "http://" not in text and "https://" not in text
    assert all(url.startswith(("data:image/png;base64,", "#")) or url == "audit.csv" for url in checker.urls)
    assert text.count(f'src="data:image/png;base64,{base64.b64encode(PNG).decode()}"') == 2
    assert "<title>Audit &lt;1&gt;</title>" in text


def test_report_orders_verdict_then_groups_figures_models_settings(single):
    result, path = single
    text = path.read_text(encoding="utf-8")
    marks = [text.index(m) for m in ('class="reading"', "<h3>Groups</h3>", "<figure>", 'class="sortable"',
                                     "<h3>Settings</h3>", "<h3>Versions</h3>")]
    assert marks == sorted(marks)
    for verdict in result.verdicts.values():
        assert html.escape(plain_reading(verdict)) in text
    assert "near-copies of training models" in text and "95%: [" in text
    assert '<h4>hr <span class="small">generated</span></h4>' in text
    assert "figcaption" in text and "frontier &lt;plot&gt;" in text
    assert "bootstrap.samples" in text and "report generated" in text and torch.__version__ in text


def test_report_names_every_group_escaped(single):
    result, path = single
    text = path.read_text(encoding="utf-8")
    for name in result.groups:
        assert html.escape(name) in text
    assert "<script>alert(1)</script>" not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; &#x27;quotes&quot;" in text


def test_report_model_table_has_every_model_and_numeric_columns(single):
    result, path = single
    text = path.read_text(encoding="utf-8")
    table = text[text.index('<table class="sortable">'):]
    table = table[:table.index("</table>")]
    assert table.count("<tr>") == 1 + sum(map(len, result.groups.values()))
    assert '<th scope="col" data-kind="num" class="num">min_l2</th>' in table
    assert '<th scope="col" data-kind="text">group</th>' in table
    assert '<th scope="col" data-kind="text">near_copy</th>' in table  # booleans sort as text


def test_report_saved_files_round_trip(single):
    result, path = single
    directory = path.parent
    loaded = AuditResult.load(directory)
    assert list(loaded.groups) == list(result.groups)
    for name, g in result.groups.items():
        h = loaded.groups[name]
        assert h.role == g.role
        for key in ("weights", "min_l2", "nearest_index", "nearest_l2"):
            assert torch.equal(getattr(h, key), getattr(g, key)), (name, key)
        assert h.metrics.keys() == g.metrics.keys()
        assert all(torch.equal(h.metrics[k], v) for k, v in g.metrics.items())
    assert {n: {k: torch.equal(v, loaded.per_model[n][k]) for k, v in f.items()} for n, f in result.per_model.items()} \
        == {n: {k: True for k in f} for n, f in result.per_model.items()}
    assert loaded.verdicts == result.verdicts and loaded.frontier == result.frontier
    assert loaded.settings == result.settings and loaded.versions == result.versions
    with open(directory / "audit.csv", newline="", encoding="utf-8") as file:
        rows = list(csv.DictReader(file))
    assert len(rows) == sum(map(len, result.groups.values()))
    assert [r["group"] for r in rows].count(NASTY) == len(result.groups[NASTY])
    assert not list(directory.glob(".*.tmp"))  # atomic writes leave no temporaries


def test_report_several_sections_have_contents_notes_and_own_files(tmp_path):
    sections = {"hr": make_result({"generated": 5}), "hd": make_result({"generated": 4}, FIELD)}
    tasks_seen = []

    def figures(result, task):
        tasks_seen.append(task)
        return {"plot": PNG}

    path = write_report(sections, tmp_path, figures=figures, tasks={"hd": "field task"},
                        notes={"hr": "trained in 1.5 s\n<b>fast</b>"},
                        panels={"hd": ['<section class="panel"><h4>invariance</h4></section>']})
    text = path.read_text(encoding="utf-8")
    assert tasks_seen == [None, "field task"]
    assert parse(text).errors == []
    contents = text[text.index("<nav>"):text.index("</nav>")]
    assert '<a href="#section-1">hr</a>' in contents and '<a href="#section-2">hd</a>' in contents
    assert contents.count("<strong>generated</strong>") == 2  # every verdict's reading, before any section
    assert '<section id="section-1">' in text and '<section id="section-2">' in text
    assert text.index('<section id="section-1">') < text.index('<section id="section-2">')
    assert "trained in 1.5 s\n&lt;b&gt;fast&lt;/b&gt;" in text
    # A panel goes into its own section, after the figures and before the model table.
    panel = text.index('<section class="panel"><h4>invariance</h4></section>')
    assert text.index('<section id="section-2">') < panel < text.rindex("<h3>Models</h3>")
    assert "<th scope=\"col\" data-kind=\"num\" class=\"num\">1-nna</th>" in text  # field metrics in group table
    assert 'href="hr/audit.csv"' in text and 'href="hd/audit.csv"' in text
    for name in sections:
        assert {p.name for p in (tmp_path / name).iterdir()} == {"audit.json", "audit.csv", "arrays.safetensors"}
        assert list(AuditResult.load(tmp_path / name).groups) == list(sections[name].groups)
    assert not (tmp_path / "audit.json").exists()


def test_report_single_section_without_contents(single):
    assert "<nav>" not in single[1].read_text(encoding="utf-8")


def test_report_caps_the_model_table_and_points_to_the_csv(tmp_path):
    result = make_result({"generated": 2001})
    text = write_report({"audit": result}, tmp_path, figures=lambda r, t: {}).read_text(encoding="utf-8")
    total = sum(map(len, result.groups.values()))
    assert f"Showing the first 2000 of {total} models" in text
    table = text[text.index('<table class="sortable">'):]
    assert table[:table.index("</table>")].count("<tr>") == 1 + 2000
    assert "No figures." in text


@pytest.mark.slow  # draws every figure of weightmem_fast.plots, t-SNE included (about 4 s)
def test_report_default_figures_are_the_plots_figures(tmp_path):
    pytest.importorskip("matplotlib", reason="the default figures need matplotlib")
    from weightmem_fast import plots

    result = make_result({"generated": 6})
    text = write_report({"audit": result}, tmp_path, grid=20).read_text(encoding="utf-8")
    names = list(plots.figures(result, None, grid=20))
    assert text.count('src="data:image/png;base64,') == len(names) >= 4
    captions = re.findall(r'<figcaption class="caption">(.*?)</figcaption>', text)
    assert captions == names


@pytest.mark.parametrize("copies, beyond, ratio, expected", [
    (0.92, 0.0, 0.3, "Most models (92%) are near-copies of training models; no models are beyond the noise "
                     "frontier; and they lie closer to training models than training models lie to each other "
                     "(min-L2 ratio 0.3)."),
    (0.2, 0.6, 1.5, "A notable share of models (20%) are near-copies of training models; most models (60%) are "
                    "beyond the noise frontier; and they lie as far from training models as training models lie "
                    "from each other, or farther (min-L2 ratio 1.5)."),
    (0.05, math.nan, math.nan, "Few models (5%) are near-copies of training models; an unknown share of models are "
                               "beyond the noise frontier; and their distance to training models is unknown."),
])
def test_plain_reading_follows_thresholds(copies, beyond, ratio, expected):
    verdict = Verdict("g", estimate(beyond), estimate(copies), estimate(ratio), {})
    assert plain_reading(verdict) == expected


@pytest.mark.parametrize("call, exc, fragment", [
    (lambda r, d: write_report(r, d), TypeError, "sections must be a mapping"),
    (lambda r, d: write_report({}, d), ValueError, "sections is empty"),
    (lambda r, d: write_report({"a": 1}, d), TypeError, r"sections\['a'\] must be an AuditResult"),
    (lambda r, d: write_report({"a/b": r}, d), ValueError, "cannot be a directory name"),
    (lambda r, d: write_report({"report.html": r, "x": r}, d), ValueError, "cannot be a directory name"),
    (lambda r, d: write_report({"a": r}, d, notes={"b": "x"}), ValueError, r"notes names sections \['b'\]"),
    (lambda r, d: write_report({"a": r}, d, notes={"a": 3}), TypeError, r"notes\['a'\] must be a str"),
    (lambda r, d: write_report({"a": r}, d, panels={"a": "<p>"}), TypeError, r"panels\['a'\] must be a list or tuple"),
    (lambda r, d: write_report({"a": r}, d, tasks=[1]), TypeError, "tasks must be a mapping"),
    (lambda r, d: write_report({"a": r}, d, grid=0), ValueError, "grid must be an int >= 1; got 0"),
    (lambda r, d: write_report({"a": r}, d, grid=2.5), TypeError, "grid must be an int >= 1; got float"),
    (lambda r, d: write_report({"a": r}, d, figures="no"), TypeError, "figures must be callable"),
])
def test_write_report_rejects_bad_arguments(tmp_path, call, exc, fragment):
    with pytest.raises(exc, match=fragment):
        call(make_result({"generated": 2}), tmp_path)
    assert not (tmp_path / "report.html").exists()


# --- a real browser -------------------------------------------------------------------------------------------------

# Chromium prints every console message (log, warning, error, uncaught exception, CSP violation) to stderr as
# "...:INFO:CONSOLE:<line>] "<message>", source: ..." (older builds: "CONSOLE(<line>)"). The report logs nothing,
# so any such line is a failure; a deliberately broken page proves the detection works.
CONSOLE = re.compile(r":CONSOLE[:(]\d*\)?\]? *(.*)")


@pytest.fixture
def chromium(tmp_path):
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        pytest.skip("chromium not installed (apt-get install chromium): browser test skipped")

    def run(page: Path, *args: str) -> subprocess.CompletedProcess:
        # A private profile, so parallel runs never share a profile lock; --no-sandbox because CI runs as root.
        command = [exe, "--headless=new", "--disable-gpu", "--no-sandbox", "--no-first-run",
                   f"--user-data-dir={tmp_path / 'profile'}", "--enable-logging=stderr", "--v=0", *args,
                   page.resolve().as_uri()]
        return subprocess.run(command, capture_output=True, text=True, timeout=60, check=True)

    return run


def console_messages(stderr: str) -> list[str]:
    return [m.group(1) for m in map(CONSOLE.search, stderr.splitlines()) if m]


@pytest.mark.slow  # two Chromium runs, about 1.5 s each
def test_browser_loads_report_without_console_messages(single, chromium, tmp_path):
    broken = tmp_path / "broken.html"
    broken.write_text('<!DOCTYPE html><html><head><meta charset="utf-8"><title>x</title></head><body>'
                      "<script>missingFunction();</script></body></html>", encoding="utf-8")
    assert any("missingFunction" in m for m in console_messages(chromium(broken, "--dump-dom").stderr))

    loaded = chromium(single[1], "--dump-dom")
    assert console_messages(loaded.stderr) == []
    assert re.search(r'<html lang="en" class="js">', loaded.stdout)  # the page's script ran to its end


def column(dom: str, name: str) -> list[str]:
    """The cells of column ``name`` of the sortable table in a DOM dump, in row order."""
    table = dom[dom.index('<table class="sortable">'):]
    table = table[:table.index("</table>")]
    headers = [re.sub(r"<[^>]*>", "", h) for h in re.findall(r"<th[^>]*>(.*?)</th>", table)]
    index = headers.index(name)
    rows = re.findall(r"<tr>(.*?)</tr>", table[table.index("<tbody>"):], flags=re.S)
    return [re.findall(r"<td[^>]*>(.*?)</td>", row)[index] for row in rows]


@pytest.mark.slow  # one Chromium run
def test_browser_sorts_numeric_columns_as_numbers(single, chromium, tmp_path):
    # A copy of the report with a click on the min_l2 header appended; the report itself is left as written.
    click = ("<script>Array.prototype.find.call(document.querySelectorAll('table.sortable th'), "
             "function (th) { return th.textContent === 'min_l2'; }).click();</script>")
    page = tmp_path / "clicked.html"
    page.write_text(single[1].read_text(encoding="utf-8").replace("</body>", click + "</body>"), encoding="utf-8")
    clicked = chromium(page, "--dump-dom")
    assert console_messages(clicked.stderr) == []
    values = [float(v) for v in column(clicked.stdout, "min_l2")]
    before = [float(v) for v in column(single[1].read_text(encoding="utf-8"), "min_l2")]
    assert values == sorted(before) and values != before
    texts = column(clicked.stdout, "min_l2")
    assert texts != sorted(texts)  # e.g. "13.2" < "2.5" as text: the sort must be numeric
    assert 'aria-sort="ascending">min_l2</th>' in clicked.stdout


@pytest.mark.slow  # one Chromium run
def test_browser_screenshot_is_not_blank(single, chromium, tmp_path):
    image_module = pytest.importorskip("matplotlib.image", reason="matplotlib decodes the screenshot")
    shot = tmp_path / "shot.png"
    chromium(single[1], f"--screenshot={shot}", "--window-size=1200,2000", "--hide-scrollbars")
    pixels = (torch.from_numpy(image_module.imread(shot)[..., :3].copy()) * 255).round().to(torch.int32)
    colours = torch.unique((pixels[..., 0] * 256 + pixels[..., 1]) * 256 + pixels[..., 2]).numel()
    not_white = (pixels < 242).any(dim=-1).float().mean().item()
    assert colours > 50 and not_white > 0.02, (colours, not_white)
