"""Session benchmark (issue 14): one scripted dashboard exploration, ours vs a notebook with the anchors.

    python bench/session.py [--model resnet18] [--size 224] [--threads 2] [--device cpu] [--json PATH]

The steps, as a dashboard user takes them on one bundled sample: load the image (decode, preprocess,
predict) -> Grad-CAM -> Grad-CAM++ -> XGrad-CAM -> LayerCAM (deepest layer) -> Grad-CAM on the next layer
-> occlusion patch 16 stride 8 -> occlusion patch 32 stride 16 -> back to patch 16 stride 8 -> integrated
gradients (32 steps) -> colormap change. Each map step also draws its overlay.

Ours: `sc.load_model(..., weights=None)` and `sc.attribute` with the engine's cache on, cleared once at the
start (a real session: what an earlier step computed is reused). Anchors: the same steps as a notebook user
writes them: pytorch-grad-cam's CAM objects and captum's Occlusion / IntegratedGradients made per call,
`show_cam_on_image` for the pictures. Same weights (the anchors get a copy of the module made before any
of our calls), same input, target and layers. Steps alternate which side goes first. See bench/README.md.
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

os.environ.setdefault("TQDM_DISABLE", "1")
# On a shared CPU, OpenMP threads spinning at barriers can make a 2-thread pass 20x slower (measured
# here under load); passive waiting keeps both sides' figures meaningful. Must precede importing torch.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import cv2
import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_vs_anchors import Row, emit_json, report, table, timed

import saliency_core as sc
from saliency_core import viz

CAM_CLASSES = {
    "gradcam": "GradCAM",
    "gradcam_pp": "GradCAMPlusPlus",
    "xgradcam": "XGradCAM",
    "layercam": "LayerCAM",
}
# Steps whose passes must all come from the cache: CAM variants after the first, and returning to a setting.
MUST_REUSE = ("Grad-CAM++", "XGrad-CAM", "LayerCAM", "occlusion 16/8 again")


@dataclass
class Step:
    name: str
    method: str  # "" for steps that make no map (load, colormap)
    params: dict[str, Any] = field(default_factory=dict)


def session_steps(layer: str, layer2: str) -> list[Step]:
    """The scripted exploration, in order."""
    return [
        Step("load image", ""),
        Step("Grad-CAM", "gradcam", {"layer": layer}),
        Step("Grad-CAM++", "gradcam_pp", {"layer": layer}),
        Step("XGrad-CAM", "xgradcam", {"layer": layer}),
        Step("LayerCAM", "layercam", {"layer": layer}),
        Step(f"Grad-CAM on {layer2}", "gradcam", {"layer": layer2}),
        Step("occlusion 16/8", "occlusion", {"patch": 16, "stride": 8, "incremental": True}),
        Step("occlusion 32/16", "occlusion", {"patch": 32, "stride": 16, "incremental": True}),
        Step("occlusion 16/8 again", "occlusion", {"patch": 16, "stride": 8, "incremental": True}),
        Step("integrated gradients 32", "integrated_gradients", {"steps": 32}),
        Step("colormap change", ""),
    ]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="resnet18", help="a model id sc.load_model knows (random init)")
    p.add_argument("--size", type=int, default=224, help="input side in pixels")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, mps")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads (0: torch's default)")
    p.add_argument(
        "--repeat", type=int, default=1, help="sessions to run (median per step); 1: it is a session"
    )
    p.add_argument("--batch-size", type=int, default=16, help="the anchors' batch (captum Occlusion, IG)")
    p.add_argument("--sample", default="chelsea", help="bundled sample id (sc.list_samples())")
    p.add_argument("--json", default="", metavar="PATH", help="also write the figures as JSON to PATH")
    p.add_argument(
        "--anchor-channels-last",
        action="store_true",
        help="give the anchors' model the channels-last layout our engine stores it in (default: "
        "torchvision's contiguous layout, as a notebook builds it)",
    )
    return p.parse_args(argv)


class Ours:
    """The dashboard's side: the shared engine, its cache on."""

    def __init__(self, lm: sc.LoadedModel, size: int, path: Path) -> None:
        self.lm, self.path = lm, path
        self.prep = None if size == 224 else sc.Preprocess(resize=round(size * 256 / 224), crop=size)
        self.x: torch.Tensor | None = None
        self.target: sc.Target | None = None
        self.map: torch.Tensor | None = None
        self.picture: np.ndarray | None = None
        self.shown: np.ndarray | None = None
        self.notes: dict[str, tuple[str, ...]] = {}
        self.paths: dict[
            str, dict[str, Any]
        ] = {}  # how occlusion ran (mode, incremental), as the engine says

    def run(self, step: Step) -> None:
        if step.name == "load image":
            image = sc.load_image(self.path)
            if self.prep is None:
                self.x = self.lm.preprocess(image)
                self.picture = self.lm.to_image(self.x)
            else:
                self.x = self.prep(image, self.lm.device)
                self.picture = self.prep.to_image(self.x)
            self.target = self.lm.predict(self.x)[0]
        elif step.method:
            a = sc.attribute(self.lm, self.x, step.method, self.target, **step.params)
            self.map, self.notes[step.name] = a.map, a.notes
            if step.method == "occlusion":
                self.paths[step.name] = {k: a.extras[k] for k in ("mode", "incremental") if k in a.extras}
            self.shown = viz.overlay(self.picture, viz.normalise(a.map, "positive"), "inferno")
        else:  # colormap change: the map already shown, drawn with another colormap
            self.shown = viz.overlay(self.picture, viz.normalise(self.map, "positive"), "viridis")


class Anchors:
    """The notebook's side: torchvision transforms, pytorch-grad-cam and captum objects made per call."""

    def __init__(self, model: torch.nn.Module, size: int, path: Path, batch: int) -> None:
        import pytorch_grad_cam
        from captum.attr import IntegratedGradients, Occlusion
        from pytorch_grad_cam.utils.image import show_cam_on_image
        from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
        from torchvision import transforms as T

        self.model, self.path, self.batch = model, path, batch
        self.device = next(model.parameters()).device
        self.cams = {m: getattr(pytorch_grad_cam, name) for m, name in CAM_CLASSES.items()}
        self.Occlusion, self.IG, self.show, self.Target = (
            Occlusion,
            IntegratedGradients,
            show_cam_on_image,
            ClassifierOutputTarget,
        )
        self.crop = T.Compose([T.Resize(round(size * 256 / 224)), T.CenterCrop(size)])
        self.to_tensor = T.Compose([T.ToTensor(), T.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])])
        self.images = 0  # images through the model, counted by a hook (as engine.forward_count counts ours)
        model.register_forward_pre_hook(lambda _m, args: setattr(self, "images", self.images + len(args[0])))
        self.map01: np.ndarray | None = None

    def run(self, step: Step) -> None:
        if step.name == "load image":
            crop = self.crop(Image.open(self.path).convert("RGB"))
            self.rgb = np.float32(np.asarray(crop)) / 255.0
            self.x = self.to_tensor(crop).unsqueeze(0).to(self.device)
            with torch.no_grad():
                self.target = int(self.model(self.x).argmax())
        elif step.method in self.cams:
            layer = self.model.get_submodule(step.params["layer"])
            try:
                with self.cams[step.method](model=self.model, target_layers=[layer]) as cam:
                    self.map01 = cam(input_tensor=self.x, targets=[self.Target(self.target)])[0]
            finally:
                self.model.zero_grad(set_to_none=True)
            self.shown = self.show(self.rgb, self.map01, use_rgb=True)
        elif step.method == "occlusion":
            p, s = step.params["patch"], step.params["stride"]
            attr = self.Occlusion(self.model).attribute(
                self.x, sliding_window_shapes=(3, p, p), strides=(3, s, s), baselines=0,
                target=self.target, perturbations_per_eval=self.batch,
            )  # fmt: skip
            self._draw(attr)
        elif step.method == "integrated_gradients":
            attr = self.IG(self.model).attribute(
                self.x, baselines=0.0, target=self.target, n_steps=step.params["steps"],
                method="gausslegendre", internal_batch_size=self.batch,
            )  # fmt: skip
            self._draw(attr)
        else:  # colormap change on the map they already have
            self.shown = self.show(self.rgb, self.map01, use_rgb=True, colormap=cv2.COLORMAP_VIRIDIS)

    def _draw(self, attr: torch.Tensor) -> None:
        values = np.maximum(attr[0].sum(0).detach().cpu().numpy(), 0.0)
        self.map01 = (values / (values.max() or 1.0)).astype(np.float32)
        self.shown = self.show(self.rgb, self.map01, use_rgb=True)


def warm_up(module: torch.nn.Module, size: int, device: torch.device) -> None:
    """One forward and backward pass outside the session (allocator, kernels), writing no param.grad."""
    x = torch.randn(1, 3, size, size, device=device, requires_grad=True)
    torch.autograd.grad(module(x)[0].max(), x)


def run_session(
    ours: Ours, theirs: Anchors, steps: list[Step], device: torch.device
) -> list[tuple[float, float, int, int]]:
    """One session: per step (ours seconds, anchor seconds, our images through the model, theirs)."""
    engine = sc.get_engine()
    engine.cache.clear()
    out = []
    for i, step in enumerate(steps):
        before, theirs_before = engine.forward_count, theirs.images
        if i % 2:
            t_theirs = timed(lambda s=step: theirs.run(s), device)
            t_ours = timed(lambda s=step: ours.run(s), device)
        else:
            t_ours = timed(lambda s=step: ours.run(s), device)
            t_theirs = timed(lambda s=step: theirs.run(s), device)
        out.append((t_ours, t_theirs, engine.forward_count - before, theirs.images - theirs_before))
        print(f"  {step.name}: ours {t_ours:.3f}s, anchors {t_theirs:.3f}s", file=sys.stderr, flush=True)
    return out


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    warnings.filterwarnings("ignore", category=UserWarning, module=r"captum\..*")
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    engine = sc.set_engine(sc.Engine(device=device))
    torch.manual_seed(0)
    lm = sc.load_model(args.model, weights=None)
    anchor_model = copy.deepcopy(lm.module)  # the notebook's own model, same weights
    # As torchvision builds it: our engine stores a loaded CNN channels-last, a notebook's model is not.
    layout = torch.channels_last if args.anchor_channels_last else torch.contiguous_format
    anchor_model.to(memory_format=layout)
    path = next(s.path for s in sc.list_samples() if s.id == args.sample)
    layers = lm.layers()
    steps = session_steps(layers[0], layers[1] if len(layers) > 1 else layers[0])
    for module in (lm.module, anchor_model):
        warm_up(module, args.size, device)

    runs = []
    for _ in range(max(1, args.repeat)):
        ours, theirs = Ours(lm, args.size, path), Anchors(anchor_model, args.size, path, args.batch_size)
        runs.append(run_session(ours, theirs, steps, device))
    passes = {s.name: (r[2], r[3]) for s, r in zip(steps, runs[-1])}
    rows = []
    for k, step in enumerate(steps):
        anchor = "captum" if step.method in ("occlusion", "integrated_gradients") else "pytorch-grad-cam"
        t_ours = statistics.median(run[k][0] for run in runs)
        t_theirs = statistics.median(run[k][1] for run in runs)
        rows.append(
            Row(step.name, anchor if step.method else "torchvision / cv2", t_ours, t_theirs, len(runs))
        )
    ours_total, theirs_total = sum(r.ours for r in rows), sum(r.theirs for r in rows)

    print(
        f"session: model {args.model} (random init), input 1x3x{args.size}x{args.size}, sample {args.sample}, "
        f"device {engine.describe_device()}, torch {torch.__version__}, anchors' batch {args.batch_size}, "
        f"anchors' model {'channels-last' if args.anchor_channels_last else 'contiguous (NCHW)'}, "
        f"{len(runs)} session(s), median per step"
    )
    print(table(rows))
    print("our images through the model per step: " + ", ".join(f"{n} {p[0]}" for n, p in passes.items()))
    print("anchors' images per step:             " + ", ".join(f"{n} {p[1]}" for n, p in passes.items()))
    for name, notes in ours.notes.items():
        if name.startswith("occlusion"):
            print(f"  {name}: {ours.paths.get(name) or 'plain'} " + " ".join(notes))
    speedup = theirs_total / ours_total
    print(
        f"session total: ours {ours_total:.2f}s, anchors {theirs_total:.2f}s, ratio ours/anchor "
        f"{ours_total / theirs_total:.3f}; the anchors take {speedup:.2f}x as long (goal >= 5x: "
        f"{'met' if speedup >= 5 else 'not met'})"
    )
    reused = {name: passes[name][0] for name in MUST_REUSE if name in passes}
    ok = all(v == 0 for v in reused.values())
    print(f"passes that must come from the cache: {reused} -> {'ok' if ok else 'FAIL'}")

    payload = report(args.model, args.size, engine.describe_device(), rows, bench="session")
    for row, step in zip(payload["rows"], steps):
        row["ours_passes"], row["anchor_passes"] = passes[step.name]
    payload.update(
        ours_total_s=round(ours_total, 4),
        anchor_total_s=round(theirs_total, 4),
        ratio=round(ours_total / theirs_total, 4),
        speedup=round(speedup, 3),
        goal_speedup=5.0,
        reuse_passes=reused,
        reuse_ok=ok,
        occlusion_notes={k: list(v) for k, v in ours.notes.items() if k.startswith("occlusion")},
        occlusion_paths=ours.paths,
        anchor_layout="channels_last" if args.anchor_channels_last else "contiguous",
    )
    emit_json(payload, args.json)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
