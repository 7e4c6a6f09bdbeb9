"""Missing weights are explained in the main pane, with their actions there, not only in the sidebar."""

from __future__ import annotations

from app_helpers import texts

from ui import state


def _main_texts(at) -> str:
    return "\n".join(str(e.value) for kind in ("warning", "info", "caption") for e in getattr(at.main, kind))


def test_missing_weights_say_why_in_the_main_pane_with_the_actions(app, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))  # an empty torchvision cache: ImageNet weights missing
    monkeypatch.setenv("SALIENCY_OFFLINE", "1")
    at = app()
    at.selectbox(key=state.MODEL).set_value("resnet18").run()
    assert not at.exception, [e.value for e in at.exception]
    main = _main_texts(at)
    assert "has no weights on this machine" in main and "resnet18-f37072fd.pth" in main
    assert "Choose an image and a model in the sidebar to begin" not in texts(at)
    labels = [b.label for b in at.main.button]
    assert "Use the bundled demo model" in labels and "Use random weights (teaching only)" in labels
    assert "Downloading is off" in main  # the download's status is there too
    # The sidebar says so briefly and points at the page.
    assert any("has no weights" in str(w.value) for w in at.sidebar.warning)
    at.main.button(key="act.random").click().run()
    assert not at.exception
    assert at.session_state[state.VIEW] is not None and at.session_state[state.VIEW].weights == "random"
    assert "has no weights on this machine" not in _main_texts(at)
