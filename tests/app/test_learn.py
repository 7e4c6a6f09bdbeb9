"""Learn says when methods coincide on the current model, and why; and that they do not elsewhere."""

from __future__ import annotations

from app_helpers import texts

LEARN = "pages/3_Learn.py"


def test_learn_says_the_cam_group_coincides_on_the_demo_model(app) -> None:
    at = app(page=LEARN)
    at.selectbox(key="learn.method").set_value("xgradcam").run()
    assert not at.exception
    said = texts(at)
    assert "Same map, different names." in said
    assert "Grad-CAM, XGrad-CAM, HiResCAM and CAM give the same map" in said
    assert "global average pooling and a single linear classifier" in said
    # a method outside the group says nothing of the kind
    at.selectbox(key="learn.method").set_value("gradcam_pp").run()
    assert "Same map, different names." not in texts(at)
    assert not at.exception
