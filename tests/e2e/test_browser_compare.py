"""Compare in a real browser: the layer sweep's agreement matrices keep one row and column per layer."""

from __future__ import annotations

import pytest
from browser import ARTIFACTS, BROWSER_ARGS, chromium, variance, wait_idle

import saliency_core as sc

pytestmark = pytest.mark.e2e

TIMEOUT_MS = 90_000


def test_layer_sweep_agreement_matrix_has_a_row_per_layer(server: str) -> None:
    from playwright.sync_api import expect, sync_playwright

    executable = chromium()
    expect.set_options(timeout=TIMEOUT_MS)
    scene = next(s for s in sc.list_samples() if s.kind == "synthetic")
    link = f"{server}/Compare?sample={scene.id}&model=shapes_demo&method=gradcam"
    if not next(m for m in sc.list_models() if m.id == "shapes_demo").weights_available:
        link += "&weights=random"
    layers = sc.load_model("shapes_demo", weights=None).layers()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, args=BROWSER_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(TIMEOUT_MS)
        try:
            page.goto(link)
            main = page.get_by_test_id("stMain")
            expect(main.get_by_role("heading", name="Compare")).to_be_visible()
            wait_idle(page)
            main.get_by_role("radio", name="One method, several settings").click()
            wait_idle(page)
            expect(main.get_by_text("Spearman rank correlation")).to_be_visible()
            matrix = main.locator(".js-plotly-plot").filter(has_text="Spearman rank correlation")
            expect(matrix).to_have_count(1)
            # one y tick label per swept layer, all different, and a value written in every cell
            ticks = matrix.locator(".ytick text").all_text_contents()  # SVG: no inner text
            assert len(ticks) == len(layers) and len(set(ticks)) == len(layers), ticks
            cells = [t for t in matrix.locator("text").all_text_contents() if t.replace(".", "").isdigit()]
            assert len(cells) >= len(layers) ** 2 - len(layers), cells  # off-diagonal values at least
            assert any(c != "1.00" for c in cells), "every pair agrees perfectly: the matrix collapsed"
            assert variance(matrix.screenshot()) > 5
        finally:
            page.screenshot(path=str(ARTIFACTS / "last_compare.png"))
            browser.close()
