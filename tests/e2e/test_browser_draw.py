"""Drawing a box in Chromium: on Evaluate's pointing game, a box dragged on the picture becomes the box's
numbers and the metric's region."""

from __future__ import annotations

import re

import pytest
from browser import ARTIFACTS, BROWSER_ARGS, chromium, wait_idle

import saliency_core as sc

pytestmark = pytest.mark.e2e

TIMEOUT_MS = 90_000
SIDE = 224  # the demo model's input
DRAWN = (20, 30, 120, 130)  # x0, y0, x1, y1 in input pixels
SLACK = 2  # pixels: a mouse position rounds to a screen pixel, about 1.5 input pixels here


def test_a_box_dragged_on_the_picture_sets_the_pointing_games_box(server: str) -> None:
    from playwright.sync_api import expect, sync_playwright

    executable = chromium()
    expect.set_options(timeout=TIMEOUT_MS)
    scene = next(s for s in sc.list_samples() if s.kind == "synthetic")
    link = f"{server}/?sample={scene.id}&model=shapes_demo&method=gradcam"
    if not next(m for m in sc.list_models() if m.id == "shapes_demo").weights_available:
        link += "&weights=random"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, args=BROWSER_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(TIMEOUT_MS)
        try:
            page.goto(link)
            wait_idle(page)
            sidebar, main = page.get_by_test_id("stSidebar"), page.get_by_test_id("stMain")
            sidebar.get_by_role("link", name="Evaluate").click()
            expect(main.get_by_role("heading", name="Evaluate")).to_be_visible()
            wait_idle(page)
            main.get_by_role("tab", name="Localisation").click()
            wait_idle(page)
            main.get_by_text("Box", exact=True).click()  # the ground truth: a box instead of the mask
            wait_idle(page)
            plot = main.locator(".js-plotly-plot").first
            plot.scroll_into_view_if_needed()
            area = plot.locator(".nsewdrag").first.bounding_box()  # the plot area: x 0..224, y 0..224
            assert area is not None

            def at(x: float, y: float) -> tuple[float, float]:
                return area["x"] + x / SIDE * area["width"], area["y"] + y / SIDE * area["height"]

            page.mouse.move(*at(DRAWN[0], DRAWN[1]))
            page.mouse.down()
            for step in range(1, 11):  # a drag in steps, as a hand makes it
                f = step / 10
                page.mouse.move(
                    *at(DRAWN[0] + f * (DRAWN[2] - DRAWN[0]), DRAWN[1] + f * (DRAWN[3] - DRAWN[1]))
                )
            page.mouse.up()
            wait_idle(page)
            inputs = [main.get_by_label(name, exact=True) for name in ("x0", "y0", "x1", "y1")]
            # x1 arrives near the drawn 120 (the sample's own box starts elsewhere)
            expect(inputs[2]).to_have_value(re.compile(r"^1(1[89]|2[012])$"), timeout=20_000)
            wait_idle(page)
            values = [int(float(i.input_value())) for i in inputs]
            assert all(abs(v - d) <= SLACK for v, d in zip(values, DRAWN)), values
            expect(
                main.get_by_text(f"Ground truth: box ({', '.join(str(v) for v in values)})")
            ).to_be_visible()
        finally:
            page.screenshot(path=str(ARTIFACTS / "last_draw.png"))
            browser.close()
