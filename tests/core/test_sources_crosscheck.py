"""Grad-CAM on source models equals pytorch-grad-cam's on the same module and layer: a timm CNN at its
default layer, and a timm ViT whose token output is read as a grid automatically (the anchor is given
the usual ViT reshape_transform by hand). Compared as in test_crosscheck_gradcam.py: the raw CAM before
ReLU and normalisation, at the layer's resolution (relative L2 error <= 1e-4)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from known_models import one_torch_thread
from pytorch_grad_cam import GradCAM
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

import saliency_core as sc
from saliency_core.hooks import hook_count

EXACT = 1e-4


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    with one_torch_thread():
        yield


def rel_err(ours: torch.Tensor, theirs: torch.Tensor) -> float:
    ours = ours.detach().double().reshape(theirs.shape)
    return float((ours - theirs.double()).norm() / theirs.double().norm())


def vit_reshape(tensor: torch.Tensor, side: int = 14) -> torch.Tensor:
    """pytorch-grad-cam's documented ViT transform: drop the class token, tokens -> [N, C, h, w]."""
    result = tensor[:, 1:, :].reshape(tensor.size(0), side, side, tensor.size(2))
    return result.permute(0, 3, 1, 2)


def anchor(module, x, target: int, layer: str, reshape=None) -> tuple[torch.Tensor, torch.Tensor]:
    """(raw CAM [h, w], activations [K, h, w]) as pytorch-grad-cam's get_cam_image saw them."""
    seen = {}

    class Recording(GradCAM):
        def get_cam_image(self, input_tensor, target_layer, targets, activations, grads, eigen_smooth):
            cam = super().get_cam_image(input_tensor, target_layer, targets, activations, grads, eigen_smooth)
            seen["cam"], seen["acts"] = np.array(cam), np.array(activations)
            return cam

    try:
        with Recording(module, [module.get_submodule(layer)], reshape_transform=reshape) as cam:
            cam(input_tensor=x, targets=[ClassifierOutputTarget(target)])
    finally:
        module.zero_grad(set_to_none=True)  # the anchor writes param.grad
    assert hook_count(module) == 0
    return torch.from_numpy(seen["cam"][0]), torch.from_numpy(seen["acts"][0])


def test_timm_cnn_gradcam_matches_pytorch_grad_cam() -> None:
    torch.manual_seed(0)
    model = sc.load_model("timm:resnet18", weights=None)
    x = torch.randn(1, 3, 96, 96, generator=torch.Generator().manual_seed(1)).to(model.device)
    ours = sc.attribute(model, x, "gradcam", 3, use_cache=False)
    assert ours.params["layer"] == "layer4" and ours.raw.shape == (3, 3)
    theirs, _ = anchor(model.module, x, 3, "layer4")
    assert rel_err(ours.raw, theirs) <= EXACT
    assert hook_count(model.module) == 0


def test_timm_vit_gradcam_reads_tokens_as_a_grid() -> None:
    torch.manual_seed(0)
    model = sc.load_model("timm:vit_tiny_patch16_224", weights=None)
    assert model.zero_head_warning() == ""  # timm's random head is not zero: gradients flow
    x = torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(2)).to(model.device)
    ours = sc.attribute(model, x, "gradcam", 5, use_cache=False)  # no reshape asked for: automatic
    assert ours.params["layer"] == "blocks.11.norm1"
    assert ours.raw.shape == (14, 14) and ours.map.shape == (224, 224)
    theirs, acts = anchor(model.module, x, 5, "blocks.11.norm1", reshape=vit_reshape)
    assert acts.shape == (192, 14, 14) and float(theirs.abs().sum()) > 0
    assert rel_err(ours.raw, theirs) <= EXACT
