"""Explore's result view in a real browser: how fast a colormap change redraws the map, and the layout at
1000x800 (a map inside the first viewport, no scrolling).

The latency is measured inside the page: from the click on another colormap to the frame where the overlay
image has its new source loaded (median of several trials; the figures are written to .e2e_artifacts/).
"""

from __future__ import annotations

import json
import statistics
import time

import pytest
from browser import ARTIFACTS, BROWSER_ARGS, chromium, wait_idle

import saliency_core as sc

pytestmark = pytest.mark.e2e

TIMEOUT_MS = 90_000
TRIALS = 10
LIMIT_MS = 1000.0  # the target is 300 ms on an idle 2-core machine; this bound catches regressions
CMAPS = ["jet", "viridis", "turbo", "magma", "inferno"]

# The overlay image's source and whether it has loaded; the overlay is the image captioned "... overlay".
_OVERLAY_JS = """() => {
  const figures = [...document.querySelectorAll('[data-testid="stMain"] [data-testid="stImage"]')];
  const found = figures.find(f => (f.innerText || '').includes('overlay'));
  const img = found ? found.querySelector('img') : null;
  return img ? img : null;
}"""


def _link(server: str) -> str:
    scene = next(s for s in sc.list_samples() if s.kind == "synthetic")
    link = f"{server}/?sample={scene.id}&model=shapes_demo&method=gradcam"
    if not next(m for m in sc.list_models() if m.id == "shapes_demo").weights_available:
        link += "&weights=random"
    return link


def _open(p, server: str, viewport: dict[str, int]):
    from playwright.sync_api import expect

    browser = p.chromium.launch(executable_path=chromium(), args=BROWSER_ARGS)
    page = browser.new_page(viewport=viewport)
    page.set_default_timeout(TIMEOUT_MS)
    expect.set_options(timeout=TIMEOUT_MS)
    page.goto(_link(server))
    main = page.get_by_test_id("stMain")
    wait_idle(page)
    if main.get_by_text("Press Run to compute").count():  # estimated slow on a busy machine: run it
        main.get_by_role("button", name="Run", exact=True).click()
    expect(main.get_by_text("Grad-CAM overlay")).to_be_visible()
    wait_idle(page)
    return browser, page, main


def _choose_colormap(page, main, name: str) -> float:
    """Pick `name` in the Colormap box; return ms from the click to the redrawn, loaded overlay."""
    page.evaluate(
        """() => {
          window.__t0 = null; window.__t1 = null;
          const img = (__OVERLAY__)();
          window.__old = img ? img.src : '';
          if (!window.__listening) {  // one listener: the first press on an option starts the clock
            window.__listening = true;
            window.addEventListener('mousedown', e => {
              const option = e.target.closest('[role="option"]');
              if (option && window.__t0 === null) window.__t0 = performance.now();
            }, {capture: true});
          }
        }""".replace("__OVERLAY__", _OVERLAY_JS)
    )
    main.get_by_test_id("stSelectbox").filter(has_text="Colormap").click()
    page.get_by_role("option", name=name, exact=True).click()
    page.wait_for_function(
        """() => {
          const img = (__OVERLAY__)();
          if (window.__t0 === null || !img || img.src === window.__old || !img.complete) return false;
          if (!img.naturalWidth) return false;
          window.__t1 = performance.now();
          return true;
        }""".replace("__OVERLAY__", _OVERLAY_JS),
        polling="raf",
        timeout=TIMEOUT_MS,
    )
    return float(page.evaluate("() => window.__t1 - window.__t0"))


def test_colormap_change_redraws_quickly(server: str) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser, page, main = _open(p, server, {"width": 1400, "height": 1000})
        try:
            figures = []
            for i in range(TRIALS + 1):
                figures.append(_choose_colormap(page, main, CMAPS[i % len(CMAPS)]))
                wait_idle(page)
                time.sleep(0.3)
            trials = figures[1:]  # the first change also warms the media and figure paths
            median = statistics.median(trials)
            ARTIFACTS.mkdir(exist_ok=True)
            (ARTIFACTS / "redraw_latency.json").write_text(
                json.dumps({"median_ms": median, "trials_ms": trials}, indent=2)
            )
            print(f"colormap -> redrawn overlay: median {median:.0f} ms over {len(trials)} trials {trials}")
            caption = main.get_by_test_id("stImage").filter(has_text="overlay").inner_text()
            assert CMAPS[TRIALS % len(CMAPS)] in caption  # the last choice is the one drawn
            assert median < LIMIT_MS, f"median redraw {median:.0f} ms (trials: {trials})"
        finally:
            page.screenshot(path=str(ARTIFACTS / "last_display.png"))
            browser.close()


@pytest.mark.parametrize(("width", "height"), [(1000, 800), (1400, 1000)])
def test_a_map_is_visible_without_scrolling(server: str, width: int, height: int) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser, page, main = _open(p, server, {"width": width, "height": height})
        try:
            expect_sidebar = page.get_by_test_id("stSidebar")
            assert expect_sidebar.is_visible(), "the sidebar should be open"
            main.evaluate("element => element.scrollTo(0, 0)")
            page.mouse.move(5, 5)
            overlay = main.get_by_test_id("stImage").filter(has_text="overlay").locator("img")
            box = overlay.bounding_box()
            assert box is not None and box["width"] > 120, box
            assert box["y"] >= 0 and box["x"] >= 0, box
            assert box["y"] + box["height"] <= height, f"the overlay ends at {box['y'] + box['height']:.0f}"
            assert box["x"] + box["width"] <= width, box
            # the three panels are the same size: input, overlay and the heatmap's plot area
            images = main.get_by_test_id("stImage").locator("img")
            sizes = [images.nth(i).bounding_box() for i in range(2)]
            assert abs(sizes[0]["width"] - sizes[1]["width"]) <= 2, sizes
            plot = main.locator(".js-plotly-plot .nsewdrag").first.bounding_box()
            assert plot is not None and abs(plot["height"] - sizes[1]["height"]) <= 0.1 * sizes[1]["height"]
            path = ARTIFACTS / f"explore_{width}x{height}.png"
            page.screenshot(path=str(path))
        finally:
            browser.close()
