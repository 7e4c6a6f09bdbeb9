"""Measured pass speeds for time estimates: seconds per batch, kept per (model, input size, kind of
pass), fitted as a fixed per-batch overhead plus a per-image cost, so a batch of 16 is predicted from
batches of 1 and 4 (and from the batch itself once one ran).

Kinds: "forward" (no gradient), "backward" (a forward and a backward down to the input), and
"layer:<name>" (a forward and a backward that stops at that layer, as a CAM's does).
"""

from __future__ import annotations

import statistics
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Hashable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

import torch

from ..models.loaded import LoadedModel

# A backward pass down to the input costs about as much again as its forward on the CPU (the demo model
# measures 0.8-1.1x, ResNets 1.5-2x): a forward + backward, until one was measured, is 2.5 forwards.
BACKWARD_RATIO = 2.5
# What the probe may spend on a model at a new input size, beyond its first forward (which is the real
# input's output, cached: every method needs it for its default target anyway).
PROBE_SECONDS = 0.4
# A model's first pass is cold (weight packing, first allocations: 5-20x a warm one for a small CNN), so
# one warm forward follows it unless the cold one took longer than this: a big detector's figure then
# stays the cold one (on the slow side) until its first run measures it.
COLD_CAP_SECONDS = 1.5

_KEEP = 5  # recent batches kept per batch size: their median resists one slow batch under load
_KEYS = 512  # (model, size, kind) entries kept; each is a few numbers


class SpeedTable:
    """Seconds per batch of each size, per key; thread-safe. A key's first batch ever is the cold one
    (lazy initialisation, first allocations: often several times slower), so it counts only until
    another batch of the same size arrives."""

    def __init__(self) -> None:
        self._batches: OrderedDict[Hashable, dict[int, deque[float]]] = OrderedDict()
        self._cold: dict[Hashable, int] = {}  # key -> size of its cold first batch, while still held
        self._run: set[Hashable] = set()  # keys measured on a real run (not only by the probe)
        self._cold_run: set[Hashable] = set()  # keys whose only batch outside the probe is the cold one
        self._lock = threading.Lock()

    def record(self, key: Hashable, images: int, seconds: float, probe: bool = False) -> None:
        """One batch of `images` took `seconds`; `probe`: measured by the probe, not a real run."""
        images = max(1, int(images))
        with self._lock:
            sizes = self._batches.get(key)
            if sizes is None:
                sizes = self._batches[key] = {}
                self._cold[key] = images
                if not probe:
                    self._cold_run.add(key)
            else:
                if self._cold.get(key) == images:
                    sizes[images].popleft()  # a warm batch of the cold one's size replaces it
                    del self._cold[key]
                    if probe and key in self._cold_run:  # the only batch a run measured is gone
                        self._run.discard(key)
                if not probe or key not in self._cold:
                    self._cold_run.discard(key)
            sizes.setdefault(images, deque(maxlen=_KEEP)).append(float(seconds))
            if not probe:
                self._run.add(key)
            self._batches.move_to_end(key)
            while len(self._batches) > _KEYS:
                old, _ = self._batches.popitem(last=False)
                self._cold.pop(old, None)
                self._run.discard(old)
                self._cold_run.discard(old)

    def known(self, key: Hashable) -> bool:
        with self._lock:
            return key in self._batches

    def cold_only(self, key: Hashable) -> float | None:
        """Seconds of the key's cold first batch while it is the key's only batch, else None."""
        with self._lock:
            sizes = self._batches.get(key)
            if sizes is None or key not in self._cold or sum(map(len, sizes.values())) > 1:
                return None
            return sizes[self._cold[key]][0]

    def from_probe(self, key: Hashable) -> bool:
        """Whether the key's figures come from the probe alone (no real run measured yet)."""
        with self._lock:
            return key in self._batches and key not in self._run

    def sizes(self, key: Hashable) -> list[int]:
        with self._lock:
            return sorted(self._batches.get(key, {}))

    def seconds(self, key: Hashable, images: int) -> float | None:
        """Predicted seconds for a batch of `images`: the median of that size's batches when one ran,
        else `overhead + images × per_image` fitted to the medians of the sizes that ran (proportional
        to the one size there is, when only one ran); None for a key never measured. While only the
        probe measured the key, the fastest of each size stands for it instead of the median: its few
        single passes run as the page is first drawn (the browser, Streamlit's own threads), and on two
        cores a disturbed one takes 0.15-0.3 s where the demo model's undisturbed one takes 5 ms."""
        with self._lock:
            sizes = self._batches.get(key)
            pick = min if key in self._batches and key not in self._run else statistics.median
            medians = {n: pick(t) for n, t in (sizes or {}).items() if t}
        if not medians:
            return None
        if images in medians:
            return medians[images]
        overhead, per_image = fit(medians)
        return overhead + per_image * images

    def per_image(self) -> dict[Hashable, float]:
        """Each key's seconds per image at its largest measured batch (for the engine's status panel)."""
        with self._lock:
            items = [(k, v) for k, v in self._batches.items() if any(v.values())]
        out = {}
        for key, sizes in items:
            n = max(s for s, t in sizes.items() if t)
            out[key] = statistics.median(sizes[n]) / n
        return out


def fit(medians: dict[int, float]) -> tuple[float, float]:
    """(overhead per batch, seconds per image) from median seconds per batch size, by least squares
    kept non-negative; one size alone gives no overhead (all proportional)."""
    if len(medians) == 1:
        ((n, t),) = medians.items()
        return 0.0, t / n
    ns = list(medians)
    ts = [medians[n] for n in ns]
    mean_n, mean_t = sum(ns) / len(ns), sum(ts) / len(ts)
    spread = sum((n - mean_n) ** 2 for n in ns)
    slope = sum((n - mean_n) * (t - mean_t) for n, t in zip(ns, ts)) / spread
    overhead = mean_t - slope * mean_n
    if slope <= 0 or overhead < 0:
        # Noise made a bigger batch look no slower (or a negative overhead): fall back to proportional
        # to the largest batch, whose per-image figure is the closest to what batches cost.
        n = max(ns)
        return 0.0, medians[n] / n
    return overhead, slope


class SpeedModel:
    """The Engine's measured speeds (a mixin of CostModel): recording, predicting, probing."""

    forward_cached: Callable[..., tuple[Any, bool]]
    forward_count: int
    measure_batch_memory: Callable[..., AbstractContextManager[Any]]

    def __init__(self) -> None:
        # (model id, model key, (h, w), kind) -> seconds per batch of each size
        self._speeds = SpeedTable()
        self._probing: set[tuple] = set()  # keys of models being probed (their passes are the probe's)
        self._probe_solo: set[tuple] = set()  # of those, the ones whose probe found its threads disturbed

    # --- speed ------------------------------------------------------------------------------
    def record_speed(
        self,
        model: LoadedModel,
        kind: str,
        seconds: float,
        images: int,
        size: tuple[int, ...] | None = None,
        probe: bool = False,
    ) -> None:
        """A batch of `images` passes of `kind` ("forward", "backward": forward + backward to the input,
        "layer:<name>": forward + backward to that layer) at input `size` (h, w) took `seconds`."""
        hw = tuple(int(v) for v in size[-2:]) if size is not None else _probe_size(model)
        probe = probe or model.key in self._probing
        self._speeds.record((model.id, model.key, hw, kind), images, seconds, probe)

    @property
    def _speed(self) -> dict[tuple[str, str], float]:
        """Seconds per image, by ("model at W×H", kind), at each kind's largest measured batch."""
        return {
            (f"{mid} at {hw[1]}×{hw[0]}", kind): s
            for (mid, _, hw, kind), s in self._speeds.per_image().items()
        }

    def _speed_key(self, model: LoadedModel, x: torch.Tensor, kind: str) -> tuple:
        return (model.id, model.key, tuple(int(v) for v in x.shape[-2:]), kind)

    def probe(self, model: LoadedModel, x: torch.Tensor) -> None:
        """Measure `model` at x's size before any method ran there, so every estimate has seconds.

        The first pass is x's own output, through the cache: every method needs it for its default
        target, so even a big detector (seconds per forward on a CPU) pays nothing extra for it. The
        rest runs only while it fits PROBE_SECONDS, judged by that first pass: a second forward (the
        first is cold), a forward + backward, and a small batch (for the per-batch overhead). A slow
        model stops after the first pass and is estimated from it (backward as BACKWARD_RATIO
        forwards) until its runs are measured. A size whose only figure is a cold pass made outside the
        probe (x's output for the target picker) is probed all the same, from passes of its own. A
        reduced-size probe scaled by pixels would misjudge the detectors, which resize every input to
        their own side internally.
        """
        with model.lock:
            key = self._speed_key(model, x, "forward")
            if self._speeds.known(key):
                # A pass made before the probe (the target picker's prediction, through the cache) is
                # the model's cold one: alone it would time every estimate at 5-50x a warm pass.
                cold = self._speeds.cold_only(key)
                if cold is None or cold > COLD_CAP_SECONDS:
                    return
            self._probing.add(model.key)
            try:
                with self.measure_batch_memory(model, x, 1):  # batch sizes known before the first run
                    started = time.perf_counter()
                    _, made = self.forward_cached(model, x)
                    first = time.perf_counter() - started
                if not made:  # the output was cached already: time (and measure) a pass of our own
                    with self.measure_batch_memory(model, x, 1):
                        first = self._probe(model, x, 1, False, 1, 0.0, None)[0] or 0.0
                if first > COLD_CAP_SECONDS:
                    return
                left = PROBE_SECONDS
                # Each kind: the fastest of a few passes, as long as the next is expected to fit.
                forward, spent = self._probe(model, x, 1, False, 1, first, None)  # the warm one
                left -= spent
                if forward is not None:
                    forward, spent = self._probe(model, x, 1, False, 2, forward, left)
                    left -= spent
                if forward is not None:
                    left -= self._probe(model, x, 1, True, 2, forward * BACKWARD_RATIO, left)[1]
                    for n in (4, 2):
                        if forward * n <= left:
                            self._probe(model, x, n, False, 1, forward * n, None)
                            break
            except Exception:  # a model that fails here fails its run with a clear error
                return
            finally:
                self._probing.discard(model.key)
                self._probe_solo.discard(model.key)

    def _probe(
        self,
        model: LoadedModel,
        x: torch.Tensor,
        n: int,
        grad: bool,
        times: int,
        guess: float,
        left: float | None,
    ) -> tuple[float | None, float]:
        """(fastest seconds, seconds spent) of up to `times` batches of `n` copies of x (a forward, or
        forward + backward), each run only if expected (from `guess`, then the fastest so far) to fit
        in `left` (None: no limit); the fastest is recorded. Under a shared CPU the fastest is the least disturbed."""
        best, spent = None, 0.0
        for _ in range(times):
            if left is not None and (guess if best is None else best) > left - spent:
                break
            solo = model.key in self._probe_solo
            took = self._time_pass(model, x, n, grad, one_thread=solo)
            if took is None:
                return None, spent
            spent += took
            threads = torch.get_num_threads()
            if not solo and model.device.type == "cpu" and threads > 1 and took * threads <= COLD_CAP_SECONDS:
                # The same pass on one thread bounds it: undisturbed, more threads are no slower, but
                # while another program has the cores (the browser drawing this page, on the server's
                # machine) threads wait for each other at every layer: 0.2 s for the demo model's 5 ms.
                alone = self._time_pass(model, x, n, grad, one_thread=True)
                if alone is not None:
                    spent += alone
                    if alone < took:  # disturbed: the probe's other passes run on one thread too
                        took = alone
                        self._probe_solo.add(model.key)
            best = took if best is None else min(best, took)
        if best is not None:
            self.record_speed(model, "backward" if grad else "forward", best, n, tuple(x.shape), probe=True)
        return best, spent

    def _time_pass(
        self, model: LoadedModel, x: torch.Tensor, n: int, grad: bool, one_thread: bool = False
    ) -> float | None:
        """Seconds of one batch of `n` copies of x (`one_thread`: with torch on one thread in this
        thread); None when the output has no gradient to take."""
        xs = x.detach().repeat(n, 1, 1, 1)
        with _torch_threads(1 if one_thread else None):
            started = time.perf_counter()
            if grad:
                xs.requires_grad_(True)
                with torch.enable_grad():
                    total = _output_sum(model.forward(xs))
                    if total is None or not total.requires_grad:
                        return None
                    torch.autograd.grad(total, [xs], allow_unused=True)
            else:
                with torch.no_grad():
                    model.forward(xs)
            took = time.perf_counter() - started
        self.forward_count += n
        return took

    def pass_seconds(
        self, model: LoadedModel, x: torch.Tensor, kind: str, images: int
    ) -> tuple[float, bool] | None:
        """(seconds for a batch of `images` passes of `kind`, whether only the probe measured it).

        A kind measured at this batch size, or at two sizes, is read or fitted from its own batches. A
        kind measured at one size only takes its batch-size curve from the forward's: a backward of 16
        is (backward of 1) × (forward of 16) / (forward of 1). A kind never measured: a layer's
        backward is bounded by a full one, a full one is BACKWARD_RATIO forwards."""
        key = self._speed_key(model, x, kind)
        sizes = self._speeds.sizes(key)
        probed = self._speeds.from_probe(key)
        if images in sizes or len(sizes) >= 2:
            return self._speeds.seconds(key, images), probed
        forward_key = self._speed_key(model, x, "forward")
        if sizes:
            seconds = self._speeds.seconds(key, images)
            if kind != "forward":
                f_m = self._speeds.seconds(forward_key, sizes[0])
                f_n = self._speeds.seconds(forward_key, images)
                if f_m and f_n:
                    seconds = self._speeds.seconds(key, sizes[0]) * f_n / f_m
            return seconds, probed
        if kind == "forward":
            return None
        fallback = self.pass_seconds(model, x, "backward" if kind.startswith("layer:") else "forward", images)
        if fallback is None:
            return None
        return fallback[0] * (1 if kind.startswith("layer:") else BACKWARD_RATIO), True


def _output_sum(out: object) -> torch.Tensor | None:
    """One scalar from every floating tensor of a model output (logits, a detector's dicts), for a
    backward pass that reaches everything the output depends on."""
    if isinstance(out, torch.Tensor):
        return out.float().sum() if out.is_floating_point() else None
    parts = out.values() if isinstance(out, dict) else out if isinstance(out, (list, tuple)) else ()
    found = [t for t in (_output_sum(p) for p in parts) if t is not None]
    return torch.stack(found).sum() if found else None


@contextmanager
def _torch_threads(threads: int | None) -> Iterator[None]:
    """Torch's intra-op threads set to `threads` for this thread while inside (None: unchanged).
    OpenMP keeps the count per thread, so other threads' passes keep theirs; only a thread whose very
    first torch pass starts meanwhile takes this count as its default (one pass of the probe long)."""
    if threads is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _probe_size(model: LoadedModel) -> tuple[int, int]:
    side = model.spec.preprocess.crop if model.spec is not None and model.spec.preprocess.crop else 224
    return (side, side)
