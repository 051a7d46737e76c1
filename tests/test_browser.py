"""Real-browser tests of the Voila apps and of JupyterLab: Voila (or JupyterLab) serves the page, Playwright drives
Debian's Chromium. The widget figures are ipympl canvases in both; each test checks they render (non-blank pixels).

The browser is ``/usr/bin/chromium`` (``apt-get install chromium``; ``.ci/run`` installs it); Playwright never
downloads one. Without it these tests FAIL, unless ``AMSNB_SKIP_BROWSER=1`` says to skip them. Screenshots go to
``tests/artifacts/`` (gitignored). Voila's first start can be slow: page renders get 90 s.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "tests" / "artifacts"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--no-first-run"]
RENDER_TIMEOUT_MS = 90_000

pytestmark = pytest.mark.browser


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _serving(proc, url: str, probe: str, name: str, log: Path):
    """Wait until the server ``proc`` answers on ``url + probe`` (any HTTP answer: GET / would already run a
    notebook), yield ``url``, and stop the server afterwards."""
    try:
        deadline = time.time() + 90
        while True:
            if proc.poll() is not None:
                pytest.fail(f"{name} exited with {proc.returncode}; see {log}")
            try:
                with urllib.request.urlopen(url + probe, timeout=5):
                    break
            except urllib.error.HTTPError:
                break
            except OSError:
                if time.time() > deadline:
                    pytest.fail(f"{name} did not answer on {url} within 90 s; see {log}")
                time.sleep(0.5)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()


@contextlib.contextmanager
def voila(app: str, show_tracebacks: bool = True):
    """Serve ``app`` with Voila as ``amsnb app`` does (amsnb's page template, this interpreter's environment, the
    notebook's kernel "amsnb") on a free port, started from the repository root."""
    port = _free_port()
    log = ARTIFACTS / f"voila_{Path(app).stem}.log"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    from amsnb.widgets.app import voila_command

    argv, env = voila_command(ROOT / app, port, cwd=ROOT,
                              extra=["--no-browser", f"--show_tracebacks={show_tracebacks}"])
    with open(log, "w") as fh:
        proc = subprocess.Popen(argv, cwd=ROOT, stdout=fh, stderr=subprocess.STDOUT, env=env)
    yield from _serving(proc, f"http://127.0.0.1:{port}/", "api", "voila", log)


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        if os.environ.get("AMSNB_SKIP_BROWSER") == "1":
            pytest.skip("AMSNB_SKIP_BROWSER=1 and /usr/bin/chromium is missing")
        pytest.fail("/usr/bin/chromium is missing: `apt-get install -y chromium` (or set AMSNB_SKIP_BROWSER=1)")
    os.environ.setdefault("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield b
        b.close()


def _parameters(app: str) -> dict:
    """The app's parameter defaults (its cell tagged ``parameters``), so the test rebuilds the same data."""
    import nbformat

    nb = nbformat.read(ROOT / app, as_version=4)
    cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    ns: dict = {}
    exec(cell.source, ns)  # our own notebook's literal defaults
    return ns


def _wait_change(page, selector: str, old: str, timeout_s: float = 30.0) -> str:
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        text = page.inner_text(selector)
        if text != old:
            time.sleep(0.3)  # let a burst of updates settle
            return page.inner_text(selector)
        time.sleep(0.1)
    raise AssertionError(f"{selector} did not change from {old!r} within {timeout_s} s")


def _parse(page) -> dict:
    """The tuner's readout: model and set from its header, each table row's text, the exact values from the
    table's data attributes."""
    header = page.inner_text(".amsnb-readout .amsnb-readout-text b").strip()
    model, eval_set = header.split(" / ")
    table = page.locator(".amsnb-readout .amsnb-readout-values").first
    rows = {}
    for row in table.locator("tr").all():
        cells = row.locator("td").all_inner_texts()
        rows[cells[0].strip()] = cells[1].strip()
    return {"model": model, "set": eval_set, "rows": rows, "thr": float(table.get_attribute("data-threshold")),
            "eff": float(table.get_attribute("data-efficiency"))}


def _expect(point) -> dict:
    """What the page must show for an amsnb.metrics working point (the rows of readout_rows)."""
    from amsnb.widgets.threshold_tuner import readout_rows

    return dict(readout_rows(point))


def _figure_png(page, selector: str) -> bytes:
    """Screenshot of the figure inside ``selector`` (the ipympl image canvas, or the PNG image itself)."""
    loc = page.locator(f"{selector} canvas").first if page.locator(f"{selector} canvas").count() else \
        page.locator(selector).first
    return loc.screenshot()


def _non_blank(page, selector: str, name: str, timeout_s: float = 60.0) -> float:
    """Wait until the figure's screenshot (the ipympl canvas inside ``selector``, or the PNG image ``selector``)
    has drawn content (> 3 % of its pixels differ from its most common colour, the background; a blank canvas has
    none); save it as ``tests/artifacts/<name>.png``; return that fraction."""
    import io

    from PIL import Image

    loc = page.locator(selector).first
    loc.wait_for(state="visible", timeout=int(timeout_s * 1000))
    if page.locator(f"{selector} canvas").count():  # an ipympl figure: its image canvas (the first)
        loc = page.locator(f"{selector} canvas").first
    deadline = time.time() + timeout_s
    frac, box = 0.0, None
    while time.time() < deadline:
        box = loc.bounding_box()
        if box and box["width"] > 100 and box["height"] > 100:
            png = loc.screenshot()
            arr = np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).reshape(-1, 3)
            colours, counts = np.unique(arr, axis=0, return_counts=True)
            frac = float(1.0 - counts.max() / counts.sum())
            if frac > 0.03:
                (ARTIFACTS / f"{name}.png").write_bytes(png)
                return frac
        time.sleep(0.5)
    raise AssertionError(f"{selector} stayed blank (box {box}, {frac:.1%} drawn pixels)")


def test_threshold_tuner_app_keyboard(browser):
    from amsnb import metrics
    from amsnb.widgets.threshold_tuner import demo_scores

    app = "widgets/threshold_tuner.ipynb"
    params = _parameters(app)
    assert not params["workdir"] and not params["score_files"], "the test relies on the app's demo scores"
    page = browser.new_page(viewport={"width": 1400, "height": 1100})
    with voila(app) as url:
        page.goto(url, timeout=RENDER_TIMEOUT_MS)
        page.wait_for_selector(".amsnb-readout .amsnb-readout-values", timeout=RENDER_TIMEOUT_MS)
        assert "Demonstration scores" in page.inner_text(".amsnb-demo-banner")
        _non_blank(page, ".amsnb-tuner-figure", "voila_threshold_tuner_canvas")
        first = page.inner_text(".amsnb-readout")
        shown = _parse(page)
        arr = demo_scores(seed=params["seed"])[shown["model"]][shown["set"]]
        score, label = np.asarray(arr["score"], np.float32), arr["label"]
        assert shown["rows"] == _expect(metrics.rejection_at_efficiency(score, label, efficiency=params["efficiency"]))

        # target-efficiency slider: two steps right, one left (step 0.001)
        handle = page.locator(".amsnb-eff-slider .noUi-handle").first
        handle.focus()
        text = first
        for key, eff in (("ArrowRight", params["efficiency"] + 0.001), ("ArrowRight", params["efficiency"] + 0.002),
                         ("ArrowLeft", params["efficiency"] + 0.001)):
            page.keyboard.press(key)
            text = _wait_change(page, ".amsnb-readout", text)
            shown = _parse(page)
            want = metrics.rejection_at_efficiency(score, label, efficiency=round(eff, 3))
            assert shown["rows"] == _expect(want), key
            assert shown["eff"] == want.efficiency
            # and the same numbers for the threshold that target gave
            assert shown["thr"] == pytest.approx(want.threshold, rel=1e-9)
            at_thr = metrics.rejection_at_threshold(score, label, threshold=want.threshold)
            assert _expect(at_thr) == _expect(want)

        # threshold slider (mode toggle), one step right
        page.get_by_role("button", name="threshold").click()
        thr_handle = page.locator(".amsnb-thr-slider .noUi-handle").first
        thr_handle.wait_for(state="visible", timeout=30_000)
        text = _wait_change(page, ".amsnb-readout", text) if page.inner_text(".amsnb-readout") != text else text
        before = _parse(page)["thr"]
        thr_handle.focus()
        page.keyboard.press("ArrowRight")
        text = _wait_change(page, ".amsnb-readout", text)
        shown = _parse(page)
        thr = shown["thr"]
        assert thr > before
        want = metrics.rejection_at_threshold(score, label, threshold=np.float64(thr))
        assert shown["rows"] == _expect(want) and shown["eff"] == want.efficiency
        page.screenshot(path=str(ARTIFACTS / "threshold_tuner.png"), full_page=True)
    page.close()


def _img_bytes(page, selector: str) -> bytes:
    """The exact image bytes an ``<img>`` element (an ipywidgets Image) shows: its src fetched in the page."""
    import base64

    b64 = page.eval_on_selector(selector, """async (img) => {
        const buf = await (await fetch(img.src)).arrayBuffer();
        let s = ""; const b = new Uint8Array(buf);
        for (let i = 0; i < b.length; i++) s += String.fromCharCode(b[i]);
        return btoa(s); }""")
    return base64.b64decode(b64)


def _image_pixels(png: bytes) -> np.ndarray:
    import io

    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)


def test_threshold_tuner_model_switch_redraws_the_figure(browser):
    """Issue 23: after a model switch in Voila the figure on the page is the kernel's fresh render of that model
    (it used to keep the old model's picture and stack titles of several models). Back and forth twice; each time
    the image the page shows matches ThresholdTuner's own render of that model within 0.5 % of the pixels."""
    from amsnb.plotting import canvas_png
    from amsnb.widgets.threshold_tuner import ThresholdTuner, demo_scores

    app = "widgets/threshold_tuner.ipynb"
    params = _parameters(app)
    scores = demo_scores(seed=params["seed"])
    page = browser.new_page(viewport={"width": 1400, "height": 1100})
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    with voila(app) as url:
        page.goto(url, timeout=RENDER_TIMEOUT_MS)
        page.wait_for_selector(".amsnb-readout .amsnb-readout-values", timeout=RENDER_TIMEOUT_MS)
        _non_blank(page, ".amsnb-tuner-figure", "voila_tuner_before_switch")
        # the page works offline: nothing is fetched from elsewhere (Voila's lab page loads FontAwesome from a CDN)
        elsewhere = [u for u in requests if not u.startswith(("http://127.0.0.1", "data:", "blob:"))]
        assert not elsewhere, elsewhere
        models = list(scores)
        text = page.inner_text(".amsnb-readout")
        for i, model in enumerate([models[1], models[0], models[1]]):
            page.locator(".amsnb-model select").first.select_option(model)
            text = _wait_change(page, ".amsnb-readout", text)
            shown = _parse(page)
            assert shown["model"] == model
            ref = ThresholdTuner(scores, model=model, eval_set=shown["set"], efficiency=params["efficiency"],
                                 interactive=False)
            want = _image_pixels(canvas_png(ref.fig))
            deadline, frac = time.time() + 30, 1.0
            while time.time() < deadline:
                got = _image_pixels(_img_bytes(page, "img.amsnb-tuner-figure"))
                frac = float(np.mean(np.any(got != want, axis=-1))) if got.shape == want.shape else 1.0
                if frac < 0.005:
                    break
                time.sleep(0.5)
            (ARTIFACTS / f"voila_tuner_switch_{i}_{model}.png").write_bytes(_img_bytes(page, "img.amsnb-tuner-figure"))
            assert got.shape == want.shape and frac < 0.005, (model, got.shape, want.shape, frac)
        page.screenshot(path=str(ARTIFACTS / "threshold_tuner_switched.png"), full_page=True)
    page.close()


@pytest.fixture(scope="module")
def user_ecal_file():
    """An amsnb-schema ECAL file under the repository root, given to the apps by a path relative to the root."""
    from amsnb.ecal.sim import simulate_to_root

    rel = Path("tests") / "artifacts" / "user_data" / "my_showers.root"
    simulate_to_root(ROOT / rel, 60, "electron", "mc", seed=3, progress=False, workers=1)
    return rel


def test_shower_browser_opens_a_relative_user_file_and_shows_a_missing_one(browser, user_ecal_file):
    """Issue 23: Voila started from the repository root; the file given in the address by a path relative to the
    root opens (the kernel runs in widgets/); a missing file shows its one-line error on the page, not "There was
    an error when executing cell"."""
    from amsnb import io

    n = len(io.read(ROOT / user_ecal_file)["energy"])
    page = browser.new_page(viewport={"width": 1400, "height": 1100})
    with voila("widgets/shower_browser.ipynb", show_tracebacks=False) as url:
        page.goto(f"{url}?data_file={user_ecal_file.as_posix()}&n_events=0", timeout=RENDER_TIMEOUT_MS)
        page.wait_for_selector(".amsnb-event-label", timeout=RENDER_TIMEOUT_MS)
        label = page.locator(".amsnb-event-label").first
        deadline = time.time() + 60
        while "event" not in label.inner_text() and time.time() < deadline:
            time.sleep(0.2)
        assert f"/ {n}," in label.inner_text(), label.inner_text()
        _non_blank(page, ".amsnb-shower-figure", "voila_shower_browser_user_file")
        page.goto(f"{url}?data_file=tests/artifacts/user_data/no_such_file.root", timeout=RENDER_TIMEOUT_MS)
        page.wait_for_selector(".amsnb-error", timeout=RENDER_TIMEOUT_MS)
        err = page.inner_text(".amsnb-error")
        page.screenshot(path=str(ARTIFACTS / "shower_browser_missing_file.png"), full_page=True)
        assert "no_such_file.root" in err and "\n" not in err.strip(), err
        assert "There was an error" not in page.inner_text("body")
    page.close()


def test_shower_browser_app_next(browser):
    import matplotlib

    matplotlib.use("Agg")
    from amsnb.ecal.shower_browser import ShowerBrowser

    params = _parameters("widgets/shower_browser.ipynb")
    assert not params.get("data_file"), "the test relies on the app's on-the-fly sample"
    # what amsnb computes: the same browser, headless, stepped once
    ref = ShowerBrowser(None, n=params["n_events"], seed=params["seed"])
    expected_first = ref.w_label.value
    ref.step(1)
    expected_next = ref.w_label.value
    assert expected_next != expected_first

    page = browser.new_page(viewport={"width": 1400, "height": 1100})
    with voila("widgets/shower_browser.ipynb") as url:
        page.goto(url, timeout=RENDER_TIMEOUT_MS)
        page.wait_for_selector(".amsnb-event-label", timeout=RENDER_TIMEOUT_MS)
        label = page.locator(".amsnb-event-label").first
        deadline = time.time() + 60
        while "event" not in label.inner_text() and time.time() < deadline:
            time.sleep(0.2)
        first = label.inner_text().strip()
        assert first == expected_first
        _non_blank(page, ".amsnb-shower-figure", "voila_shower_browser_canvas")
        page.locator(".amsnb-next").first.click()
        assert _wait_change(page, ".amsnb-event-label", first).strip() == expected_next
        # back with the keys box: "p" steps to the previous event
        keys = page.locator(".amsnb-keys input").first
        keys.click()
        keys.press_sequentially("p")
        assert _wait_change(page, ".amsnb-event-label", expected_next).strip() == expected_first
        page.screenshot(path=str(ARTIFACTS / "shower_browser.png"), full_page=True)
    page.close()


def _bounds(page) -> tuple[float | None, float | None]:
    span = page.locator(".amsnb-cut-window .amsnb-cut-bounds").first
    return tuple(None if v == "None" else float(v) for v in (span.get_attribute("data-lo"),
                                                             span.get_attribute("data-hi")))


def _final_counts(page) -> list[int]:
    """The last cut-flow row's event counts (one per class, in the table's column order)."""
    cells = page.locator(".amsnb-cut-table tr").last.locator("td").all_inner_texts()
    return [int(c) for c in cells[2::3]]


def test_cut_explorer_app_keyboard(browser):
    """The cut explorer app: moving the selected cut's minimum by keyboard changes the displayed window, and the
    cut flow on the page is exactly amsnb.cuts.cut_flow of the app's (seeded) sample for that window."""
    from amsnb import cuts
    from amsnb.ecal.cut_explorer import demo_sample

    app = "widgets/cut_explorer.ipynb"
    params = _parameters(app)
    assert not params["data_files"], "the test relies on the app's simulated sample"
    events = demo_sample(params["n_events"], params["seed"])
    cutset = cuts.load(params["cuts"])

    def expected(lo, hi):
        flow = cuts.cut_flow(events, cutset.with_window(params["cut"], min=lo, max=hi, set_name=params["set_name"]),
                             params["set_name"])
        return [int(flow.counts[c][-1]) for c in flow.classes]

    page = browser.new_page(viewport={"width": 1400, "height": 1100})
    with voila(app) as url:
        page.goto(url, timeout=RENDER_TIMEOUT_MS)
        page.wait_for_selector(".amsnb-cut-table table", timeout=RENDER_TIMEOUT_MS)
        lo0, hi0 = _bounds(page)
        assert (lo0, hi0) == cutset[params["cut"]].window(params["set_name"])
        assert _final_counts(page) == expected(lo0, hi0)
        before = _final_counts(page)
        _non_blank(page, ".amsnb-cut-figure", "voila_cut_explorer_canvas")
        figure_before = _figure_png(page, ".amsnb-cut-figure")

        handle = page.locator(".amsnb-cut-lo .noUi-handle").first
        handle.focus()
        window_text = page.inner_text(".amsnb-cut-window")
        for _ in range(5):  # 5 % of the slider's range: enough to remove events
            page.keyboard.press("ArrowRight")
        _wait_change(page, ".amsnb-cut-window", window_text)
        deadline = time.time() + 30
        while True:  # each key press is one update: wait for the last one to land
            lo, hi = _bounds(page)
            shown = _final_counts(page)
            if shown == expected(lo, hi) and lo > lo0 or time.time() > deadline:
                break
            time.sleep(0.3)
        assert lo > lo0 and hi == hi0
        assert shown == expected(lo, hi)
        assert shown != before and sum(shown) < sum(before)
        deadline = time.time() + 30  # and the N-1 figure was redrawn (the window line moved)
        while _figure_png(page, ".amsnb-cut-figure") == figure_before and time.time() < deadline:
            time.sleep(0.5)
        assert _figure_png(page, ".amsnb-cut-figure") != figure_before, "the N-1 figure did not follow the slider"
        time.sleep(1.0)  # the last of the key presses' redraws
        page.screenshot(path=str(ARTIFACTS / "cut_explorer.png"), full_page=True)
    page.close()


# ------------------------------------------------------------------------------------------------ JupyterLab
@contextlib.contextmanager
def jupyterlab(root: Path):
    """JupyterLab on ``root`` (no token, 127.0.0.1, a free port), with its settings and workspaces in ``root``'s
    parent (nothing written to ~/.jupyter) and notebook windowing off (every output rendered, in view or not)."""
    port = _free_port()
    settings = root.parent / "lab-settings"
    (settings / "@jupyterlab" / "notebook-extension").mkdir(parents=True, exist_ok=True)
    (settings / "@jupyterlab" / "notebook-extension" / "tracker.jupyterlab-settings").write_text(
        '{"windowingMode": "none"}')
    (settings / "@jupyterlab" / "apputils-extension").mkdir(parents=True, exist_ok=True)
    (settings / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings").write_text(
        '{"fetchNews": "false", "checkForUpdates": false}')
    env = {**os.environ, "JUPYTERLAB_SETTINGS_DIR": str(settings),
           "JUPYTERLAB_WORKSPACES_DIR": str(root.parent / "lab-workspaces"),
           "JUPYTER_RUNTIME_DIR": str(root.parent / "runtime")}
    env.pop("MPLBACKEND", None)  # the kernel's default backend (inline), as for a user
    log = ARTIFACTS / "jupyterlab.log"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with open(log, "w") as fh:
        proc = subprocess.Popen([sys.executable, "-m", "jupyterlab", "--no-browser", "--IdentityProvider.token=",
                                 "--ServerApp.password=", "--ip", "127.0.0.1", f"--port={port}", "--allow-root",
                                 f"--ServerApp.root_dir={root}", "--LabApp.expose_app_in_browser=True",
                                 "--LabApp.extension_manager=readonly"],
                                cwd=root, stdout=fh, stderr=subprocess.STDOUT, env=env)
    yield from _serving(proc, f"http://127.0.0.1:{port}/", "api/status", "jupyter lab", log)


def _with_parameters(src: Path, dst: Path, values: dict) -> None:
    """Copy a notebook with its ``parameters`` cell's declared names set to ``values`` (the others kept)."""
    import nbformat

    nb = nbformat.read(src, as_version=4)
    cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    lines = []
    for line in cell.source.splitlines():
        name = line.split("=")[0].strip()
        lines.append(f"{name} = {values[name]!r}" if "=" in line and name in values else line)
    cell.source = "\n".join(lines)
    nbformat.write(nb, dst)


def _run_all(page, url: str, notebook: str) -> None:
    """Open ``notebook`` in JupyterLab, wait for its kernel, run all cells (JupyterLab's own command)."""
    page.goto(f"{url}lab/tree/{notebook}", timeout=RENDER_TIMEOUT_MS)
    page.wait_for_function(f"() => window.jupyterapp && window.jupyterapp.shell.currentWidget && "
                           f"window.jupyterapp.shell.currentWidget.context && "
                           f"window.jupyterapp.shell.currentWidget.context.path === '{notebook}' && "
                           "window.jupyterapp.shell.currentWidget.sessionContext && "
                           "window.jupyterapp.shell.currentWidget.sessionContext.session && "
                           "window.jupyterapp.shell.currentWidget.sessionContext.session.kernel && "
                           "window.jupyterapp.shell.currentWidget.sessionContext.session.kernel.status === 'idle'",
                           timeout=RENDER_TIMEOUT_MS)
    page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")


def _lab_idle(page, timeout_s: float = 120.0) -> None:
    """Wait until every cell has run (no cell prompt shows [*]) and the kernel is idle."""
    page.wait_for_function("() => { const w = window.jupyterapp.shell.currentWidget; "
                           "return w.sessionContext.session.kernel.status === 'idle' && "
                           "!Array.from(document.querySelectorAll('.jp-InputPrompt')).some("
                           "e => e.textContent.includes('*')); }", timeout=int(timeout_s * 1000))


def test_jupyterlab_notebook01_and_tuner(browser, tmp_path):
    """JupyterLab, as a user runs it: notebook 01 with the smoke profile's parameters and the threshold tuner page,
    Run All. The ipympl canvases of the shower browser and of the tuner render (non-blank pixels), "next" shows
    the event amsnb's ShowerBrowser shows for the same sample, and a slider key gives amsnb.metrics' numbers."""
    import shutil

    import matplotlib

    from amsnb import io, metrics, profiles
    from amsnb.widgets.threshold_tuner import demo_scores

    root = tmp_path / "lab"
    root.mkdir()
    workdir = tmp_path / "run"
    smoke_data = ARTIFACTS / "smoke" / "data" / "ecal"
    if smoke_data.is_dir():  # a smoke run's raw samples: reused (their stamps decide), else simulated here
        shutil.copytree(smoke_data, workdir / "data" / "ecal")
    params = {**profiles.parameters("smoke", "01"), "profile": "smoke", "workdir": str(workdir)}
    _with_parameters(ROOT / "notebooks" / "01_shower_exploration.ipynb", root / "01_smoke.ipynb", params)
    shutil.copy(ROOT / "widgets" / "threshold_tuner.ipynb", root / "threshold_tuner.ipynb")

    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    with jupyterlab(root) as url:
        t0 = time.time()
        _run_all(page, url, "01_smoke.ipynb")
        _lab_idle(page, 150)
        label = page.locator(".amsnb-event-label").first
        first = label.inner_text().strip()
        _non_blank(page, ".amsnb-shower-figure", "jupyterlab_shower_browser_canvas")
        # what amsnb shows for the same sample (cell 18 of notebook 01), headless
        matplotlib.use("Agg")
        from amsnb.ecal.shower_browser import ShowerBrowser

        mc = io.read(workdir / "data" / "ecal" / "mc_high.root", max_events=params["max_plot_events"])
        iss = io.read(workdir / "data" / "ecal" / "iss_test.root", max_events=params["max_plot_events"])
        ref = ShowerBrowser({k: np.concatenate([mc[k][:150], iss[k][:150]]) for k in mc}, use_widget_canvas=False)
        assert first == ref.w_label.value
        ref.step(1)
        page.locator(".amsnb-next").first.click()
        assert _wait_change(page, ".amsnb-event-label", first).strip() == ref.w_label.value
        _non_blank(page, ".amsnb-shower-figure", "jupyterlab_shower_browser_next")
        page.locator(".amsnb-shower-figure").first.scroll_into_view_if_needed()
        page.screenshot(path=str(ARTIFACTS / "jupyterlab_notebook01.png"))
        t_nb01 = time.time() - t0

        tuner_params = _parameters("widgets/threshold_tuner.ipynb")
        _run_all(page, url, "threshold_tuner.ipynb")
        try:
            page.wait_for_selector(".amsnb-readout .amsnb-readout-values", timeout=RENDER_TIMEOUT_MS)
        except Exception:
            page.screenshot(path=str(ARTIFACTS / "jupyterlab_failure.png"))
            raise
        try:
            _non_blank(page, ".amsnb-tuner-figure", "jupyterlab_threshold_tuner_canvas", timeout_s=30)
        except AssertionError:
            # Seen once in about five runs on a loaded 2-core machine: the tuner's ipympl canvas stayed blank. A user
            # reruns the page; so does this test, once, and it must render then (the cause is not yet found).
            page.screenshot(path=str(ARTIFACTS / "jupyterlab_tuner_blank_first_try.png"))
            _run_all(page, url, "threshold_tuner.ipynb")
            page.wait_for_selector(".amsnb-readout .amsnb-readout-values", timeout=RENDER_TIMEOUT_MS)
            _non_blank(page, ".amsnb-tuner-figure", "jupyterlab_threshold_tuner_canvas")
        shown = _parse(page)
        arr = demo_scores(seed=tuner_params["seed"])[shown["model"]][shown["set"]]
        score, lab = np.asarray(arr["score"], np.float32), arr["label"]
        assert shown["rows"] == _expect(metrics.rejection_at_efficiency(score, lab,
                                                                        efficiency=tuner_params["efficiency"]))
        text = page.inner_text(".amsnb-readout")
        page.locator(".amsnb-eff-slider .noUi-handle").first.focus()
        page.keyboard.press("ArrowRight")
        _wait_change(page, ".amsnb-readout", text)
        shown = _parse(page)
        want = metrics.rejection_at_efficiency(score, lab, efficiency=round(tuner_params["efficiency"] + 0.001, 3))
        assert shown["rows"] == _expect(want) and shown["eff"] == want.efficiency
        save = page.locator(".amsnb-save").first
        assert save.evaluate("e => e.scrollWidth <= e.clientWidth"), "the Save button's label is cut off"
        page.locator(".amsnb-tuner-figure").first.scroll_into_view_if_needed()
        page.screenshot(path=str(ARTIFACTS / "jupyterlab_threshold_tuner.png"))
        print(f"JupyterLab: notebook 01 (smoke) {t_nb01:.0f} s, tuner page {time.time() - t0 - t_nb01:.0f} s")
    page.close()
