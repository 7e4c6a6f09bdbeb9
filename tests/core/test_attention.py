"""Attention family: known answers on a hand-built two-block transformer whose attention is set by hand,
and the capture on torchvision's and timm's ViTs (same outputs, nothing left behind); refused on a CNN."""

from __future__ import annotations

import numpy as np
import pytest
import timm
import torch
import torchvision
from timm.models.vision_transformer import Attention
from torch import nn

import saliency_core as sc
from saliency_core.hooks import hook_count
from saliency_core.methods.attention_capture import AttentionCapture, geometry, readout

T, HD, HEADS = 5, 5, 2  # tokens (class + a 2x2 patch grid), head size, heads
D = T + HD  # features: a one-hot position (T), then the content (HD) that values read and write
CLASSES = 3
RNG = np.random.default_rng(7)
LOGITS = RNG.normal(0.0, 1.5, size=(2, HEADS, T, T))  # per block and head: the hand-set q.k logits
CLS_CONTENT = np.array([0.2, -0.1, 0.3, 1.0, 0.5])
HEAD = RNG.normal(size=(CLASSES, HD))  # the classifier's weights on the class token's content


def softmax(s: np.ndarray) -> np.ndarray:
    e = np.exp(s - s.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


ATTN = softmax(LOGITS)  # [block, head, T, T]: the attention the model must compute


def _attention(logits: np.ndarray) -> Attention:
    """timm's Attention with queries and keys that read the one-hot position, so that the softmax of
    scale * q_i.k_j is softmax(logits) whatever the content; values read the content, identity-like, and
    the projection writes the mean of the heads back into the content."""
    attn = Attention(D, num_heads=HEADS, qkv_bias=False)
    w = torch.zeros(3 * D, D, dtype=torch.float64)
    proj = torch.zeros(D, D, dtype=torch.float64)
    for h in range(HEADS):
        for c in range(HD):
            w[h * HD + c, :T] = torch.from_numpy(logits[h][:, c]) / attn.scale  # q_i = logits[i] / scale
            w[D + h * HD + c, c] = 1.0  # k_j = e_j
            w[2 * D + h * HD + c, T + c] = 1.0  # v_j = content_j
            proj[T + c, h * HD + c] = 1.0 / HEADS
    with torch.no_grad():
        attn.qkv.weight.copy_(w)
        attn.proj.weight.copy_(proj)
        attn.proj.bias.zero_()
    return attn


class Block(nn.Module):
    def __init__(self, logits: np.ndarray) -> None:
        super().__init__()
        self.norm1 = nn.Identity()
        self.attn = _attention(logits)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.attn(self.norm1(x))


class HandViT(nn.Module):
    """Two blocks, no MLP or norm; tokens: a one-hot position + content (a class token's, then each 4x4
    patch's mean colour and a constant 1); the head reads the class token (timm's forward_head / norm)."""

    num_prefix_tokens = 1

    def __init__(self) -> None:
        super().__init__()
        self.cls_content = nn.Parameter(torch.tensor(CLS_CONTENT))
        self.blocks = nn.Sequential(Block(LOGITS[0]), Block(LOGITS[1]))
        self.norm = nn.Identity()
        self.head = nn.Linear(D, CLASSES, bias=False)
        with torch.no_grad():
            self.head.weight.zero_()
            self.head.weight[:, T:] = torch.from_numpy(HEAD)

    def forward_head(self, z: torch.Tensor) -> torch.Tensor:
        return self.head(z[:, 0])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = x.shape[0]
        patches = torch.nn.functional.avg_pool2d(x, 4).flatten(2).transpose(1, 2)  # [N, 4, 3]
        content = torch.cat(
            [patches, torch.ones_like(patches[..., :1]), torch.zeros_like(patches[..., :1])], -1
        )
        content = torch.cat([self.cls_content.expand(n, 1, HD), content], 1)
        position = torch.eye(T, dtype=x.dtype).expand(n, T, T)
        return self.forward_head(self.norm(self.blocks(torch.cat([position, content], -1))))


@pytest.fixture(scope="module")
def hand() -> tuple[nn.Module, torch.Tensor, np.ndarray]:
    model = HandViT().double().eval()
    x = 3 * torch.randn(1, 3, 8, 8, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    pooled = x[0].reshape(3, 2, 4, 2, 4).mean((2, 4)).reshape(3, 4).T.numpy()
    x0 = np.vstack([CLS_CONTENT, np.hstack([pooled, np.ones((4, 1)), np.zeros((4, 1))])])  # [T, HD]
    return model, x, x0


def _run(model: nn.Module, x: torch.Tensor, method: str, target: int | None = 1, **params) -> sc.Attribution:
    return sc.Engine(device="cpu").attribute(model, x, method, target, **params)


def _contents(x0: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    mean1, mean2 = ATTN[0].mean(0), ATTN[1].mean(0)
    x1 = x0 + mean1 @ x0
    return x1, x1 + mean2 @ x1, mean2


def test_the_hand_built_model_computes_the_attention_it_was_given(hand) -> None:
    model, x, x0 = hand
    with AttentionCapture(model) as cap:
        out = model(x)
    assert np.allclose(torch.stack([a[0] for a in cap.maps]).detach().numpy(), ATTN, atol=1e-12)
    _, x2, _ = _contents(x0)
    assert np.allclose(out[0].detach().numpy(), HEAD @ x2[0], atol=1e-12)  # content mixes as planned


def _numpy_rollout(fusion: str, discard: float) -> np.ndarray:
    joint = np.eye(T)
    for block in ATTN:
        fused = {"mean": block.mean(0), "max": block.max(0), "min": block.min(0)}[fusion].copy()
        drop = int(fused.size * discard)
        if drop:
            lowest = np.argsort(fused, axis=None, kind="stable")[:drop]
            fused.flat[lowest[lowest != 0]] = 0.0
        step = fused + np.eye(T)
        joint = (step / step.sum(-1, keepdims=True)) @ joint
    return joint[0, 1:].reshape(2, 2)


@pytest.mark.parametrize(("fusion", "discard"), [("mean", 0.0), ("max", 0.0), ("min", 0.0), ("max", 0.4)])
def test_rollout_is_the_product_of_the_renormalised_attention(hand, fusion: str, discard: float) -> None:
    model, x, _ = hand
    a = _run(model, x, "attention_rollout", None, head_fusion=fusion, discard_ratio=discard)
    assert np.allclose(a.raw.numpy(), _numpy_rollout(fusion, discard), atol=1e-6)
    assert a.map.shape == (8, 8) and (a.forward_passes, a.backward_passes) == (1, 0)
    # class-agnostic: every target gives the same map
    other = _run(model, x, "attention_rollout", 2, head_fusion=fusion, discard_ratio=discard)
    assert torch.equal(other.raw, a.raw)


@pytest.mark.parametrize("target", [0, 1, 2])
def test_chefer_relevance_is_the_gradient_weighted_rollout_worked_out_by_hand(hand, target: int) -> None:
    model, x, x0 = hand
    x1, _, mean2 = _contents(x0)
    w = HEAD[target]
    # s = w . x2[cls]: ds/dA2_h[i, j] = [i = cls] (x1 w)_j / heads, ds/dA1_h[k, j] = (I + mean A2)[cls, k] (x0 w)_j / heads
    grad2 = np.outer(np.eye(T)[0], x1 @ w) / HEADS
    grad1 = np.outer((np.eye(T) + mean2)[0], x0 @ w) / HEADS
    relevance = np.eye(T)
    for block, grad in zip(ATTN, (grad1, grad2)):
        relevance = relevance + np.maximum(grad * block, 0).mean(0) @ relevance
    a = _run(model, x, "chefer", target)
    assert np.allclose(a.raw.numpy(), relevance[0, 1:].reshape(2, 2), atol=1e-6)
    assert (a.forward_passes, a.backward_passes) == (1, 1)


@pytest.mark.parametrize(("target", "layers"), [(0, 0), (1, 0), (2, 0), (0, 1)])
def test_legrad_sums_each_blocks_own_score_sensitivity(hand, target: int, layers: int) -> None:
    model, x, x0 = hand
    x1, _, _ = _contents(x0)
    w = HEAD[target]
    # s_l = w . x_l[cls]: ds_l/dA_l,h[i, j] = [i = cls] (x_{l-1} w)_j / heads; mean over heads and the T queries
    per_block = [np.maximum(x0 @ w, 0) / HEADS / T, np.maximum(x1 @ w, 0) / HEADS / T]
    total = sum(per_block[-layers:] if layers else per_block)[1:]
    assert total.max() > total.min()  # the hand-set case is not degenerate
    expected = (total - total.min()) / (total.max() - total.min())
    a = _run(model, x, "legrad", target, layers=layers)
    assert np.allclose(a.raw.numpy(), expected.reshape(2, 2), atol=1e-6)
    assert (a.forward_passes, a.backward_passes) == (1, 1)


def _small_torchvision() -> nn.Module:
    torch.manual_seed(0)
    model = torchvision.models.VisionTransformer(
        image_size=64, patch_size=16, num_layers=2, num_heads=2, hidden_dim=32, mlp_dim=64, num_classes=10
    ).eval()
    nn.init.normal_(model.heads.head.weight, std=0.5)  # torchvision's head starts at zero: no gradient
    return model


def _small_timm(**kwargs) -> nn.Module:
    torch.manual_seed(0)
    kwargs = {"depth": 2, **kwargs}  # two of vit_tiny's twelve blocks keep the tests fast
    return timm.create_model(
        "vit_tiny_patch16_224", pretrained=False, img_size=64, num_classes=10, **kwargs
    ).eval()


@pytest.fixture(scope="module")
def image() -> torch.Tensor:
    return torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(1))


def _state(model: nn.Module) -> dict:
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_the_capture_is_torchvisions_attention_and_leaves_nothing_behind(image) -> None:
    model = _small_torchvision()
    mhas = [b.self_attention for b in model.encoder.layers]
    before = _state(model)
    with torch.no_grad():
        expected = model(image)
    inputs: list[torch.Tensor] = []
    handles = [b.ln_1.register_forward_hook(lambda _m, _i, o: inputs.append(o)) for b in model.encoder.layers]
    with torch.enable_grad(), AttentionCapture(model) as cap:
        out = model(image)
        assert all("forward" in m.__dict__ for m in mhas)
    for h in handles:
        h.remove()
    # its output is the module's own (at float rounding: torchvision's fused kernel sums in another order)
    assert torch.allclose(out, expected, rtol=1e-5, atol=1e-6)
    for mha, x, attn in zip(mhas, inputs, cap.maps):
        assert attn.requires_grad and attn.shape == (1, 2, 17, 17)
        _, own = mha(x, x, x, need_weights=True, average_attn_weights=False)
        assert torch.allclose(attn, own, rtol=1e-5, atol=1e-7)
    assert not any("forward" in m.__dict__ for m in mhas) and hook_count(model) == 0
    after = _state(model)
    assert all(torch.equal(after[k], v) for k, v in before.items())
    assert all(p.grad is None for p in model.parameters())


def test_the_timm_capture_restores_the_fused_kernel_even_after_a_failure(image) -> None:
    model = _small_timm()
    flags = [b.attn.fused_attn for b in model.blocks]
    with torch.no_grad():
        expected = model(image)
        with AttentionCapture(model) as cap:
            out = model(image)
            assert not any(b.attn.fused_attn for b in model.blocks)
        with pytest.raises(RuntimeError), AttentionCapture(model):
            model(torch.rand(1, 5, 64, 64))  # wrong channels: the patch embedding fails
    assert torch.allclose(out, expected, rtol=1e-5, atol=1e-5)
    assert len(cap.maps) == 2 and torch.allclose(cap.maps[0].sum(-1), torch.ones(1, 3, 17), atol=1e-6)
    assert [b.attn.fused_attn for b in model.blocks] == flags and hook_count(model) == 0


def _pooled_timm() -> nn.Module:
    return _small_timm(class_token=False, global_pool="avg")


@pytest.mark.parametrize(
    ("build", "prefix", "cls"),
    [(_small_torchvision, 1, True), (_small_timm, 1, True), (_pooled_timm, 0, False)],
    ids=["torchvision", "timm", "timm-avg-pooled"],
)
def test_the_head_read_after_the_last_block_is_the_models_output(
    build, prefix: int, cls: bool, image
) -> None:
    model = build()
    with torch.no_grad(), AttentionCapture(model) as cap:
        out = model(image)
    assert torch.allclose(readout(model)(cap.tokens[-1]), out, atol=1e-6)
    geo = geometry(model, (64, 64), cap.maps[0].shape[-1])
    assert (geo.prefix, geo.grid, geo.cls) == (prefix, (4, 4), cls)
    # without a class token the query is the mean patch row
    matrix = torch.rand(16 + prefix, 16 + prefix)
    expected = matrix[0] if cls else matrix[prefix:].mean(0)
    assert torch.equal(geo.query_row(matrix), expected)


def test_register_tokens_are_left_out_of_the_grid() -> None:
    model = _small_timm(reg_tokens=4)
    x = torch.rand(1, 3, 64, 64)
    a = _run(model, x, "attention_rollout", None)
    assert a.raw.shape == (4, 4) and a.extras["prefix_tokens"] == 5 and a.extras["tokens"] == 21


def test_legrads_one_backward_equals_one_backward_per_block(image) -> None:
    model = _small_torchvision()
    a = _run(model, image, "legrad", 4)
    head = readout(model)
    with torch.enable_grad(), AttentionCapture(model) as cap:
        model(image)
        grads = [
            torch.autograd.grad(head(z)[:, 4].sum(), [m], retain_graph=True)[0]
            for z, m in zip(cap.tokens, cap.maps)
        ]
    total = sum(g[0].clamp(min=0).mean(0).mean(0) for g in grads)[1:]
    expected = ((total - total.min()) / (total.max() - total.min())).reshape(4, 4)
    assert torch.allclose(a.raw, expected, atol=1e-5)


@pytest.mark.parametrize("method", ["attention_rollout", "chefer", "legrad"])
@pytest.mark.parametrize("build", [_small_torchvision, _small_timm], ids=["torchvision", "timm"])
def test_vits_give_finite_maps_with_the_estimated_passes(build, method: str, image) -> None:
    model = build()
    engine = sc.Engine(device="cpu")
    estimate = engine.estimate(model, method, {}, x=image)
    a = sc.Engine(device="cpu").attribute(model, image, method, 4)
    assert (estimate.forward_passes, estimate.backward_passes) == (a.forward_passes, a.backward_passes)
    assert a.raw.shape == (4, 4) and a.map.shape == (64, 64) and torch.isfinite(a.map).all()
    assert a.raw.max() > 0 and hook_count(model) == 0


def test_the_catalogue_vit_b_16_rolls_out_on_its_14x14_grid() -> None:
    engine = sc.Engine(device="cpu")
    model = engine.load_model("vit_b_16", weights=None)
    a = engine.attribute(model, torch.rand(1, 3, 224, 224), "attention_rollout")
    assert a.raw.shape == (14, 14) and a.map.shape == (224, 224)
    assert (
        a.raw.min() > 0 and a.raw.sum() < 1
    )  # a row of a product of stochastic matrices, class token left out


def test_a_cnn_is_refused_with_the_reason() -> None:
    engine = sc.Engine(device="cpu")
    resnet = engine.resolve(torchvision.models.resnet18(weights=None, num_classes=10).eval())
    listed = {m.id for m in sc.list_methods(model=resnet)}
    assert not listed & {"attention_rollout", "chefer", "legrad"}
    for method in ("attention_rollout", "chefer", "legrad"):
        with pytest.raises(
            sc.InvalidParameter, match="needs a vision transformer with self-attention blocks"
        ):
            engine.attribute(resnet, torch.rand(1, 3, 64, 64), method, 1)


def _timm_copy_of(tv: nn.Module) -> nn.Module:
    """timm's VisionTransformer with the weights of the small torchvision one, mapped by hand."""
    from timm.models.vision_transformer import VisionTransformer

    model = VisionTransformer(
        img_size=64,
        patch_size=16,
        embed_dim=32,
        depth=2,
        num_heads=2,
        mlp_ratio=2.0,
        num_classes=10,
        global_pool="token",
    ).eval()
    src = tv.state_dict()
    names = {
        "patch_embed.proj": "conv_proj",
        "cls_token": "class_token",
        "pos_embed": "encoder.pos_embedding",
        "norm": "encoder.ln",
        "head": "heads.head",
    }
    for i in range(2):
        block = f"encoder.layers.encoder_layer_{i}"
        names |= {
            f"blocks.{i}.norm1": f"{block}.ln_1",
            f"blocks.{i}.norm2": f"{block}.ln_2",
            f"blocks.{i}.attn.proj": f"{block}.self_attention.out_proj",
            f"blocks.{i}.mlp.fc1": f"{block}.mlp.0",
            f"blocks.{i}.mlp.fc2": f"{block}.mlp.3",
        }
    state = {}
    for key in model.state_dict():
        if ".attn.qkv." in key:
            i, kind = key.split(".")[1], key.rpartition(".")[2]
            state[key] = src[f"encoder.layers.encoder_layer_{i}.self_attention.in_proj_{kind}"]
            continue
        stem, _, leaf = key.rpartition(".")
        state[key] = src[names[key]] if key in names else src[f"{names[stem]}.{leaf}"]
    model.load_state_dict(state)
    return model


@pytest.mark.parametrize("method", ["attention_rollout", "chefer", "legrad"])
def test_torchvision_and_timm_give_the_same_map_for_the_same_weights(method: str, image) -> None:
    tv = _small_torchvision()
    tm = _timm_copy_of(tv)
    with torch.no_grad():
        assert torch.allclose(tv(image), tm(image), atol=1e-5)  # the mapping is right
    a, b = _run(tv, image, method, 4), _run(tm, image, method, 4)
    # float32 rounding of two implementations (fused and explicit softmax, summation order)
    assert torch.allclose(a.raw, b.raw, rtol=1e-4, atol=1e-6), (a.raw - b.raw).abs().max()
