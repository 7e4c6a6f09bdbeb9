"""In a real browser: "Your model" with an uploaded fine-tuned-style checkpoint (a torchvision ResNet-18
with a 7-class head, saved with a `module.` prefix) and a class-names file, then its Grad-CAM map."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torchvision
from browser import ARTIFACTS, BROWSER_ARGS, chromium, save_small, variance, wait_idle

pytestmark = pytest.mark.e2e

NAMES = ["ant", "bee", "cat", "dog", "eel", "fox", "gnu"]
TIMEOUT_MS = 90_000


def _files(folder: Path) -> tuple[Path, Path]:
    torch.manual_seed(0)
    net = torchvision.models.resnet18(weights=None, num_classes=len(NAMES))
    checkpoint = folder / "finetuned.pth"
    torch.save({"state_dict": {f"module.{k}": v for k, v in net.state_dict().items()}}, checkpoint)
    names = folder / "classes.txt"
    names.write_text("\n".join(NAMES), encoding="utf-8")
    return checkpoint, names


def test_upload_a_checkpoint_and_explain_it(server: str, tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    executable = chromium()
    expect.set_options(timeout=TIMEOUT_MS)
    checkpoint, names = _files(tmp_path)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, args=BROWSER_ARGS)
        page = browser.new_page(viewport={"width": 1200, "height": 1100})
        page.set_default_timeout(TIMEOUT_MS)
        try:
            page.goto(f"{server}/?sample=scene_01&model=shapes_demo&method=gradcam")
            wait_idle(page)
            sidebar, main = page.get_by_test_id("stSidebar"), page.get_by_test_id("stMain")
            sidebar.get_by_role("radio", name="Your model").click()
            wait_idle(page)
            sidebar.get_by_role("radio", name="torchvision").click()
            wait_idle(page)
            sidebar.get_by_role("radio", name="Checkpoint file", exact=True).click()
            uploads = sidebar.locator("input[type=file]")
            uploads.nth(0).set_input_files(str(checkpoint))
            uploads.nth(1).set_input_files(str(names))
            expect(sidebar.get_by_text("finetuned.pth")).to_be_visible()
            expect(sidebar.get_by_text("classes.txt")).to_be_visible()
            sidebar.get_by_role("button", name="Load", exact=True).click()
            wait_idle(page)
            expect(sidebar.get_by_text("7 classes · weights from finetuned.pth")).to_be_visible()
            expect(sidebar.get_by_text("names from classes.txt")).to_be_visible()
            expect(main.get_by_text("Grad-CAM overlay")).to_be_visible()
            wait_idle(page)
            overlay = main.get_by_test_id("stImage").nth(1)
            assert variance(overlay.screenshot()) > 5, "the overlay is blank"
            said = main.inner_text()
            assert any(name in said for name in NAMES), said[:2000]  # predictions use the uploaded names
            main.evaluate("element => element.scrollTo(0, 0)")
            save_small(page.screenshot(), "your_model.png")
        finally:
            page.screenshot(path=str(ARTIFACTS / "last_your_model.png"))
            browser.close()
