"""The report page in a real browser: headless Chromium (the system package) driven by Playwright.

Skipped with a one-line reason where Chromium or Playwright is missing; `.ci/run` installs Chromium.
Screenshots and load timings go to $LIE_SWEEP_ARTIFACTS (default: a pytest temporary folder).
"""

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from jobs.report import write_report
from lie_sweep import open_sweep

from .reports import logit_tolerance
from .sweeps import SMALL

pytestmark = pytest.mark.slow

CHROMIUM = os.environ.get("LIE_SWEEP_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
# as root, without a sandbox; no background connections (this machine has no network to give them)
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"]
PLOTS = ["loss-plot", "ckpt-plot", "matrix-plot", "heatmap-plot", "scatter-plot", "outputs-plot", "similarity-plot"]


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM:
        pytest.skip("no Chromium here: apt-get install -y chromium (.ci/run installs it)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("playwright is not installed: pip install -e '.[test]'")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory):
    where = Path(os.environ.get("LIE_SWEEP_ARTIFACTS") or tmp_path_factory.mktemp("report-artifacts"))
    where.mkdir(parents=True, exist_ok=True)
    return where


class Opened:
    """A report opened from disk: the page, its console errors and any request that left the file."""

    def __init__(self, browser, path, width=1400):
        self.page = browser.new_page(viewport={"width": width, "height": 1000})
        self.errors, self.requests = [], []
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("request", lambda r: None if r.url.startswith(("file:", "data:", "blob:")) else
                     self.requests.append(r.url))
        self.page.goto(Path(path).resolve().as_uri())
        self.page.wait_for_selector("body[data-ready=true]", timeout=30_000)

    def js(self, expression, arg=None):
        return self.page.evaluate(expression, arg)

    def load_ms(self):
        """Navigation start to the page's own 'all panels drawn' mark, by the browser's clock."""
        return self.js("performance.getEntriesByName('lie-sweep-ready')[0].startTime")

    def click_cell(self, row, col):
        """A real mouse click at the centre of the pair matrix's cell (row, col) (positions among the shown)."""
        self.js("document.getElementById('matrix-plot').scrollIntoView({block: 'center'})")
        x, y = self.js("""([r, c]) => { const gd = document.getElementById('matrix-plot'), fl = gd._fullLayout;
            const box = gd.getBoundingClientRect();
            return [box.left + fl.xaxis._offset + fl.xaxis.l2p(c), box.top + fl.yaxis._offset + fl.yaxis.l2p(r)]; }""",
                       [row, col])
        self.page.mouse.click(x, y)

    def close(self):
        self.page.close()


def test_demo_report_opens_offline_with_every_panel_drawn(browser, demo, artifacts):
    store, page_path = demo
    opened = Opened(browser, page_path)
    try:
        assert opened.errors == [] and opened.requests == []
        traces = opened.js(f"{json.dumps(PLOTS)}.map(id => (document.getElementById(id).data || []).length)")
        assert all(n > 0 for n in traces), dict(zip(PLOTS, traces))
        assert opened.js(f"{json.dumps(PLOTS)}.every(id => document.querySelector('#' + id + ' .main-svg'))")
        assert opened.js("document.querySelectorAll('#top-pairs tr').length") == 11
        assert opened.js("document.querySelectorAll('#top-examples tr').length") == 9
        assert opened.js("document.querySelectorAll('#conventions li').length") >= 8
        assert "ε²[u" in opened.js("document.getElementById('conventions').textContent")
        assert opened.js("document.getElementById('progress-banner').hidden")
        # thumbnails: one per shown example in each header, one per evaluation example
        assert len(opened.js("document.getElementById('matrix-plot').layout.images")) == 2 * 8
        assert len(opened.js("document.getElementById('heatmap-plot').layout.images")) == 16
        # the signed colour scale is centred at 0
        z = opened.js("document.getElementById('heatmap-plot').data[0]")
        assert z["zmid"] == 0 and z["zmin"] == -z["zmax"]
        opened.page.screenshot(path=str(artifacts / "report-demo.png"), full_page=True)
        print(f"demo report: {page_path.stat().st_size / 2**20:.2f} MiB, drawn {opened.load_ms():.0f} ms after "
              f"navigation; screenshot {artifacts / 'report-demo.png'}")
    finally:
        opened.close()


def test_slider_and_a_clicked_cell_show_the_stores_values(browser, demo):
    store, page_path = demo
    sweep = open_sweep(str(store))
    opened = Opened(browser, page_path)
    try:
        assert opened.js("window.lieSweep.state.c") == len(sweep.steps) - 1
        slider = opened.page.locator("#ckpt-slider")
        slider.focus()
        for _ in range(3):
            slider.press("ArrowLeft")  # the keyboard moves a range input and fires its input events
        c = len(sweep.steps) - 4
        assert opened.js("window.lieSweep.state.c") == c
        step = sweep.steps[c]
        assert f"checkpoint step {step}" in opened.page.inner_text("#ckpt-label")
        shown = opened.js("window.lieSweep.data.shown")
        i, j = 3, 6  # stored as (3, 6): click row 6, column 3, the swapped order
        opened.click_cell(shown.index(j), shown.index(i))
        opened.page.wait_for_function("() => document.getElementById('pair-title').textContent.includes('#6 → #3')")
        heat = np.array(opened.js("document.getElementById('heatmap-plot').data[0].z"), dtype=np.float64)
        want = -sweep.logit_deltas().sel(step=step, i=i, j=j).values.astype(np.float64)
        assert heat.shape == want.shape
        assert np.all(np.abs(heat - want) <= logit_tolerance(want))
        # the scatter's points are the pair_rms table's rows of that pair and checkpoint
        scatter = opened.js("(() => { const d = document.getElementById('scatter-plot').data[0];"
                            " return {x: d.x, y: d.y, text: d.text}; })()")
        rms = sweep.rms_table(step)
        rms = rms[(rms.i == i) & (rms.j == j)].set_index("tensor")
        assert sorted(scatter["text"]) == sorted(rms.index)
        for name, x, y in zip(scatter["text"], scatter["x"], scatter["y"]):
            assert x == pytest.approx(float(np.float32(rms.loc[name, "rms_grad"])), rel=1e-7)
            assert y == pytest.approx(float(np.float32(rms.loc[name, "rms_bracket"])), rel=1e-7)
        fit = sweep.fits(step)
        fit = fit[(fit.i == i) & (fit.j == j)].iloc[0]
        line = opened.js("document.getElementById('scatter-plot').data[1]")
        assert line["y"][0] / line["x"][0] == pytest.approx(fit.c, rel=1e-6)
        assert opened.errors == []
    finally:
        opened.close()


def test_signed_matrix_is_antisymmetric_and_magnitudes_say_so(browser, demo):
    _, page_path = demo
    opened = Opened(browser, page_path)
    try:
        z = np.array(opened.js("document.getElementById('matrix-plot').data[0].z"), dtype=np.float64)
        assert np.isfinite(z).all() and np.abs(z).max() > 0
        assert np.array_equal(z, -z.T)
        assert "negative of cell (i, j)" in opened.page.inner_text("#matrix-caption")
        opened.page.select_option("#score-select", "mag:norm")
        z = np.array(opened.js("document.getElementById('matrix-plot').data[0].z"), dtype=np.float64)
        assert np.array_equal(z, z.T) and (z >= 0).all()
        assert "symmetric" in opened.page.inner_text("#matrix-caption")
        assert "magnitude" in opened.page.inner_text("#score-select option:checked")
    finally:
        opened.close()


def test_store_still_being_written_says_so(browser, reference, tmp_path):
    partial = tmp_path / "partial.zarr"
    shutil.copytree(reference / "s.zarr", partial)
    ledger = open_sweep(str(partial)).store.ledger
    for task in (0, 1, 2, 17):
        ledger.clear_mark(task)
    out = tmp_path / "partial.html"
    write_report(str(partial), str(out))
    opened = Opened(browser, out)
    try:
        banner = opened.page.inner_text("#progress-banner")
        assert opened.js("!document.getElementById('progress-banner').hidden")
        assert "still being written" in banner and "26 of 30 tasks" in banner and "completed tasks only" in banner
        # the pending pairs' cells are blank (null), not values
        z = opened.js("document.getElementById('matrix-plot').data[0].z")
        assert sum(v is None for row in z for v in row) == 2  # at the last checkpoint, task 17's pair: (i, j), (j, i)
        assert opened.errors == []
    finally:
        opened.close()


def test_a_64_example_sweep_page_fits_its_budget_and_loads(browser, tmp_path_factory, local_ray, artifacts):
    from jobs.execution.runs import run_sweep

    root = tmp_path_factory.mktemp("s64")
    run_sweep([*SMALL, "examples.count=64", "data.length=128", "pairs.per_task=64",
               f"checkpoints.dir={root / 'ck'}", f"storage.path={root / 's64'}"], log=lambda m: None)
    out = root / "s64.html"
    result = write_report(str(root / "s64"), str(out))
    assert result.n_bytes <= 20 * 2**20 and result.shown == 16 and result.of == 64
    opened = Opened(browser, out)
    try:
        assert opened.errors == [] and opened.requests == []
        assert "left out: 48 examples" in opened.page.inner_text("#selection-note")
        ms = opened.load_ms()
        opened.page.screenshot(path=str(artifacts / "report-64.png"), full_page=True)
    finally:
        opened.close()
    line = f"64-example sweep (2,016 pairs × 2 checkpoints): page {result.n_bytes / 2**20:.2f} MiB, drawn {ms:.0f} ms"
    (artifacts / "report-64.txt").write_text(line + "\n")
    print(line)


def test_a_store_without_logit_deltas_or_arrays_renders_what_it_has(browser, reference, tmp_path, local_ray):
    from jobs.execution.runs import run_sweep

    from .sweeps import glob_overrides

    store = tmp_path / "summary.zarr"
    run_sweep(glob_overrides(reference, store, "derived.eval_count=0", "storage.keep=summary", "field=adam"),
              log=lambda m: None)
    out = tmp_path / "summary.html"
    result = write_report(str(store), str(out))
    assert result.logit_encoding is None
    opened = Opened(browser, out)
    try:
        assert opened.errors == []
        assert "no logit deltas" in opened.page.inner_text("#heatmap-caption")
        options = opened.js("Array.from(document.querySelectorAll('#score-select option'), o => o.value)")
        assert options == ["mag:norm", "mag:c"]
        assert opened.js("document.getElementById('scatter-plot').data[0].x.length") > 0
        assert "Adam" in opened.page.inner_text("#conventions")
        z = np.array(opened.js("document.getElementById('matrix-plot').data[0].z"), dtype=np.float64)
        assert np.array_equal(z, z.T)
        assert "keeps no direction" in opened.page.inner_text("#similarity-caption")
    finally:
        opened.close()


def test_the_similarity_panel_shows_the_sketched_effects_cosines_clustered(browser, demo_swaps, tmp_path, artifacts):
    sweep = open_sweep(str(demo_swaps))
    out = tmp_path / "swaps.html"
    write_report(str(demo_swaps), str(out))
    opened = Opened(browser, out)
    try:
        assert opened.errors == []
        opened.js(f"window.lieSweep.setCheckpoint({len(sweep.steps) - 1})")
        want = sweep.similarities(sweep.steps[-1], use="sketch", top=12)
        order = want["top_order"]
        z = np.array(opened.js("document.getElementById('similarity-plot').data[0].z"), dtype=np.float64)
        np.testing.assert_allclose(z, want["top_cos"][np.ix_(order, order)], rtol=0, atol=1e-12)
        labels = opened.js("document.getElementById('similarity-plot').data[0].x")
        rows = want["top_pairs"].iloc[order]
        assert labels == [f"({r.i}, {r.j})" for r in rows.itertuples()]
        caption = opened.page.inner_text("#similarity-caption")
        assert "sketches (k = 1024" in caption and "θ_ij − θ_ji" in caption
        opened.page.locator("#panel-similarity").screenshot(path=str(artifacts / "report-similarity.png"))
    finally:
        opened.close()


def test_swap_pages_show_the_exact_swap_its_trust_map_and_each_effect(browser, reference, tmp_path, local_ray):
    from jobs.execution.runs import run_sweep

    from .sweeps import glob_overrides

    both, alone = tmp_path / "both.zarr", tmp_path / "alone.zarr"
    run_sweep(glob_overrides(reference, both, "effects=[bracket,swap]"), log=lambda m: None)
    run_sweep(glob_overrides(reference, alone, "effects=[swap]", "storage.keep=summary"), log=lambda m: None)
    sweep = open_sweep(str(both))
    step, (i, j) = sweep.steps[-1], (int(v) for v in sweep.pairs[2])
    write_report(str(both), str(tmp_path / "both.html"))
    opened = Opened(browser, tmp_path / "both.html")
    try:
        assert opened.errors == []
        effects = opened.js("Array.from(document.querySelectorAll('#effect-select option'), o => o.value)")
        assert effects == ["swap", "bracket"] and opened.js("window.lieSweep.state.effect") == "swap"
        opened.js(f"window.lieSweep.select({i}, {j})")
        heat = np.array(opened.js("document.getElementById('heatmap-plot').data[0].z"), dtype=np.float64)
        exact = sweep.swap_logit_deltas().sel(epsilon=sweep.swap_epsilons[0]).sel(step=step, i=i, j=j).values
        assert np.all(np.abs(heat - exact) <= logit_tolerance(exact))
        assert "exactly" in opened.page.inner_text("#heatmap-caption")
        # the trust map: the leading order's relative error per pair, colours capped at 100%
        opened.page.select_option("#score-select", "mag:lead_rel_err")
        shown = opened.js("window.lieSweep.data.shown")
        z = np.array(opened.js("document.getElementById('matrix-plot').data[0].z"), dtype=np.float64)
        fit = sweep.fits(step)
        want = fit[(fit.i == i) & (fit.j == j)].lead_rel_err.iloc[0]
        assert z[shown.index(i), shown.index(j)] == pytest.approx(float(np.float32(want)), rel=1e-7)
        assert opened.js("document.getElementById('matrix-plot').data[0].zmax") == 1
        opened.page.select_option("#effect-select", "bracket")
        opened.page.wait_for_function("() => !document.getElementById('heatmap-caption').textContent"
                                      ".includes('exactly')")
        heat = np.array(opened.js("document.getElementById('heatmap-plot').data[0].z"), dtype=np.float64)
        lead = sweep.logit_deltas().sel(step=step, i=i, j=j).values
        assert np.all(np.abs(heat - lead) <= logit_tolerance(lead))
        assert opened.js("window.lieSweep.state.score") == "signed:all" and opened.errors == []
    finally:
        opened.close()
    write_report(str(alone), str(tmp_path / "alone.html"))
    opened = Opened(browser, tmp_path / "alone.html")
    try:
        assert opened.errors == [] and opened.js("document.getElementById('effect-select').parentElement.hidden")
        options = opened.js("Array.from(document.querySelectorAll('#score-select option'), o => o.value)")
        assert "mag:swap_norm" in options and "mag:norm" not in options and "mag:lead_rel_err" not in options
        assert opened.page.inner_text("#scatter-title").startswith("Exact swap RMS")
        header = opened.page.inner_text("#top-pairs tr:first-child")
        assert "θ_ij − θ_ji" in header and "[u_i,u_j]" not in header
        assert "ε²[u" not in opened.page.inner_text("#conventions").split("\n", 1)[1]  # only the definition line
    finally:
        opened.close()


def test_a_comparison_page_shows_stores_side_by_side_and_its_selector_filters_them(browser, reference, tmp_path,
                                                                                   local_ray, artifacts):
    """issue 24, item 8: `lie-sweep report A B` (and a multirun directory) writes one page comparing the stores;
    its numbers are the stores' own; stores that share no example are refused in one line."""
    from jobs.cli import main
    from jobs.execution.runs import run_sweep
    from jobs.report.compare import spearman

    from .sweeps import copy_of_reference, glob_overrides

    # the session's reference sweep (SGD field) beside the same grid under Adam's field, and a one-pair sweep of
    # other examples
    sgd = copy_of_reference(reference, tmp_path / "sgd.zarr")
    adam, apart = tmp_path / "adam.zarr", tmp_path / "apart.zarr"
    run_sweep(glob_overrides(reference, adam, "field=adam"), log=lambda m: None)
    run_sweep(glob_overrides(reference, apart, "examples.start=40", "examples.count=2"), log=lambda m: None)
    page = tmp_path / "cmp.html"
    assert main(["report", str(sgd), str(adam), "-o", str(page)]) == 0
    opened = Opened(browser, page)
    try:
        assert opened.errors == [] and opened.requests == []
        labels = opened.js("Array.from(document.querySelectorAll('#store-select label'), l => l.textContent.trim())")
        assert labels == ["field.name=sgd", "field.name=adam"]
        assert opened.js("document.getElementById('loss-plot').data.length") == 2
        assert opened.js("document.querySelectorAll('#matrix-plots .matrix').length") == 2
        # the matrix (mean over checkpoints) holds each store's own pairs-table means
        data = opened.js("JSON.parse(document.getElementById('lie-sweep-data').textContent)")
        shown = data["matrix"]["examples"]
        for k, store in enumerate((sgd, adam)):
            fits = open_sweep(str(store)).fits()
            z = np.array(opened.js(f"document.querySelectorAll('#matrix-plots .matrix')[{k}].data[0].z"), dtype=float)
            a, b = shown[0], shown[1]
            want = fits[(fits.i == min(a, b)) & (fits.j == max(a, b))].norm.mean()
            assert z[0, 1] == pytest.approx(want, rel=1e-12) and z[1, 0] == z[0, 1]
        values = np.array(data["scatter"]["values"], dtype=float)
        assert opened.page.inner_text("#rank-corr").split()[-2] == f"{spearman(values[0], values[1]):.3g}".rstrip("0")
        opened.page.screenshot(path=str(artifacts / "compare.png"), full_page=True)
        opened.page.click("#store-select input[data-store='1']")          # the selector filters every panel
        assert opened.js("document.getElementById('loss-plot').data.length") == 1
        assert opened.js("document.querySelectorAll('#matrix-plots .matrix').length") == 1
        assert opened.js("document.querySelectorAll('#rank-corr tr').length") == 2 and opened.errors == []
    finally:
        opened.close()
    assert main(["report", str(sgd), str(apart), "-o", str(tmp_path / "no.html")]) == 2
    assert not (tmp_path / "no.html").exists()


XSS = "<img src=x onerror=window.__pwned=1>"   # issue 30: stored strings that ran script in the reader's browser


def test_stored_strings_are_text_on_the_single_store_and_the_comparison_pages(browser, reference, tmp_path, artifacts):
    """Every string a store holds reaches the page as text: payloads in the model and dataset names, the package
    version, the codec, an output name, a tensor name, a checkpoint's path, the store's folder and a
    comparison label execute nothing, break neither page, and show as the characters they are."""
    from jobs.cli import main

    from .plant import edit_meta
    from .sweeps import copy_of_reference

    def plant(meta):
        meta["config"]["model"]["_target_"] = XSS
        meta["config"]["data"]["_target_"] = "<!--<script>window.__pwned=2</script>"
        meta.update(package_version=XSS, codec=XSS)
        meta["output_names"][0] = "<!--<script>"
        meta["output_names"][1] = XSS
        meta["checkpoints"][0]["path"] = f"/ck/{XSS}.pt"
    folder = tmp_path / "s<!--<script>"
    store = copy_of_reference(reference, folder)
    edit_meta(store, plant)
    other = copy_of_reference(reference, tmp_path / "other")
    edit_meta(other, lambda meta: meta["identity"]["model"].update(width=XSS))   # a comparison label
    page, compare = tmp_path / "xss.html", tmp_path / "xss-compare.html"
    assert main(["report", str(store), "-o", str(page), "--no-images"]) == 0
    assert main(["report", str(store), str(other), "-o", str(compare)]) == 0
    for path in (page, compare):
        assert "<!--<script>" not in path.read_text().split('id="lie-sweep-data">', 1)[1].split("</script>", 1)[0]
        opened = Opened(browser, path)
        try:
            assert opened.js("window.__pwned") is None and opened.errors == [], opened.errors
            assert opened.js("document.querySelectorAll('img[src=x]').length") == 0
            if path == page:
                conventions = opened.js("document.getElementById('conventions').textContent")
                assert f"lie-sweep {XSS}; model {XSS}, data <!--<script>" in conventions
                assert f"codec {XSS}" in conventions
                assert "s<!--<script>" in opened.js("document.getElementById('subtitle').textContent")
                ticks = opened.js("Array.from(document.querySelectorAll('#heatmap-plot .xtick text'), "
                                  "t => t.textContent)")
                assert "<!--<script>" in ticks and XSS in ticks            # drawn as the characters they are
                opened.js("window.lieSweep.setCheckpoint(0)")
                assert opened.js("window.__pwned") is None and opened.errors == []
            else:
                labels = opened.js("Array.from(document.querySelectorAll('#store-select label'), l => l.textContent)")
                assert any(XSS in label for label in labels)
                titles = opened.js("Array.from(document.querySelectorAll('#matrix-plots .gtitle'), t => t.textContent)")
                assert any(XSS in t for t in titles), titles
            opened.page.screenshot(path=str(artifacts / f"xss-{path.stem}.png"), full_page=True)
        finally:
            opened.close()
