"""Superpixels for the region family: scikit-image's SLIC, quickshift and Felzenszwalb, or a plain grid,
brought to exactly the requested number of segments so that a method's cost is known before it runs.

scikit-image is imported inside the functions: importing it costs start-up time that most runs never need.
"""

from __future__ import annotations

import heapq
import math

import numpy as np

ALGORITHMS = ("slic", "quickshift", "felzenszwalb", "grid")
# The longest side each algorithm segments at (the labels are then scaled up, nearest neighbour): quickshift's
# cost grows with its kernel, which grows with the picture (about 30 s for a 512-px picture).
WORKING_SIDE = {"slic": 256, "felzenszwalb": 256, "quickshift": 128}


def segment(image: np.ndarray, algorithm: str, count: int) -> np.ndarray:
    """Labels [H, W] (int64, 0..n-1 numbered in raster order of first appearance) of an HxWx3 uint8
    picture, with exactly n = min(count, H*W) segments; deterministic for the same picture."""
    h, w = image.shape[:2]
    count = max(1, min(int(count), h * w))
    if algorithm == "grid":
        return grid(h, w, count)
    if algorithm not in WORKING_SIDE:
        raise ValueError(f"Unknown segmentation '{algorithm}' (one of {', '.join(ALGORITHMS)}).")
    small = _working_picture(image, WORKING_SIDE[algorithm])
    labels = _algorithm(small, algorithm, count)
    if labels.shape != (h, w):
        rows = np.minimum((np.arange(h) + 0.5) * labels.shape[0] / h, labels.shape[0] - 1).astype(int)
        cols = np.minimum((np.arange(w) + 0.5) * labels.shape[1] / w, labels.shape[1] - 1).astype(int)
        labels = labels[rows[:, None], cols[None, :]]
    return exact_count(labels, count)


def grid(h: int, w: int, count: int) -> np.ndarray:
    """`count` near-square cells: `rows` bands, the cells spread as evenly as possible over them."""
    rows = min(h, count, max(1, round(math.sqrt(count * h / w))))
    per_band = [count // rows + (1 if i < count % rows else 0) for i in range(rows)]
    labels = np.empty((h, w), dtype=np.int64)
    band_edges = np.linspace(0, h, rows + 1).round().astype(int)
    first = 0
    for i, cells in enumerate(per_band):
        cells = min(cells, w)
        col_edges = np.linspace(0, w, cells + 1).round().astype(int)
        for j in range(cells):
            labels[band_edges[i] : band_edges[i + 1], col_edges[j] : col_edges[j + 1]] = first + j
        first += cells
    return exact_count(labels, count)  # a band narrower than its share of cells is split to make up


def _working_picture(image: np.ndarray, side: int) -> np.ndarray:
    """The picture at most `side` pixels on its longer side."""
    h, w = image.shape[:2]
    if max(h, w) <= side:
        return image
    from skimage.transform import resize

    f = side / max(h, w)
    size = (max(1, round(h * f)), max(1, round(w * f)))
    small = (resize(image, size, anti_aliasing=True, preserve_range=True)).round().astype(np.uint8)
    return small


def _algorithm(image: np.ndarray, algorithm: str, count: int) -> np.ndarray:
    from skimage import segmentation

    area = image.shape[0] * image.shape[1] / count  # pixels per wanted segment
    if algorithm == "slic":
        # SLICO (slic_zero): the compactness adapts per cluster. Plain SLIC at a fixed compactness returns a
        # single segment on a noisy texture (its fragments fall under the connectivity minimum, all merged).
        return segmentation.slic(
            image, n_segments=count, compactness=10.0, slic_zero=True, start_label=0, channel_axis=-1
        )
    if algorithm == "felzenszwalb":
        # A larger scale merges more; min_size bounds the count at about 4x the wanted one.
        return segmentation.felzenszwalb(image, scale=area / 4, sigma=0.8, min_size=max(1, int(area / 4)))
    # quickshift: segments a few kernels wide (its time grows with the kernel: capped, the merging makes up
    # the count); its random tie-breaking noise has a fixed seed.
    kernel = min(6.0, max(1.0, math.sqrt(area) / 4))
    return segmentation.quickshift(
        image.astype(np.float64) / 255.0, kernel_size=kernel, max_dist=4 * kernel, ratio=0.5, rng=42
    )


def exact_count(labels: np.ndarray, count: int) -> np.ndarray:
    """`labels` with exactly `count` segments: the smallest merged into the neighbour it shares the longest
    border with, or the largest halved across its longer extent, repeatedly; renumbered in raster order."""
    labels = _renumber(labels)
    n = int(labels.max()) + 1
    if n > count:
        labels = _merge(labels, n, count)
    while int(labels.max()) + 1 < count:
        labels = _split_largest(labels)
    return _renumber(labels)


def _renumber(labels: np.ndarray) -> np.ndarray:
    flat = labels.reshape(-1)
    _, first, inverse = np.unique(flat, return_index=True, return_inverse=True)
    rank = np.empty(len(first), dtype=np.int64)
    rank[np.argsort(first, kind="stable")] = np.arange(len(first))
    return rank[inverse.reshape(-1)].reshape(labels.shape)


def _merge(labels: np.ndarray, n: int, count: int) -> np.ndarray:
    """Merge on the region adjacency graph (border lengths), then relabel the pixels once."""
    sizes = np.bincount(labels.reshape(-1), minlength=n).tolist()
    pairs = [
        labels[:, :-1].reshape(-1),
        labels[:, 1:].reshape(-1),
        labels[:-1].reshape(-1),
        labels[1:].reshape(-1),
    ]
    a = np.concatenate([pairs[0], pairs[2]])
    b = np.concatenate([pairs[1], pairs[3]])
    keep = a != b
    lo, hi = np.minimum(a[keep], b[keep]), np.maximum(a[keep], b[keep])
    codes, borders = np.unique(lo * n + hi, return_counts=True)
    neighbours: list[dict[int, int]] = [{} for _ in range(n)]
    for code, border in zip(codes.tolist(), borders.tolist()):
        i, j = divmod(code, n)
        neighbours[i][j] = border
        neighbours[j][i] = border
    parent = list(range(n))
    alive = n
    heap = [(size, i) for i, size in enumerate(sizes)]
    heapq.heapify(heap)
    while alive > count:
        size, i = heapq.heappop(heap)
        if parent[i] != i or size != sizes[i]:
            continue  # a stale entry: merged away, or grown since it was pushed
        if neighbours[i]:
            j = max(neighbours[i], key=lambda k: (neighbours[i][k], -k))
        else:  # an island (the whole image apart from itself is gone): join the smallest other segment
            j = min((s, k) for k, s in enumerate(sizes) if parent[k] == k and k != i)[1]
        gone, neighbours[i] = neighbours[i], {}
        for k, border in gone.items():
            neighbours[k].pop(i, None)
            if k != j:
                neighbours[j][k] = neighbours[j].get(k, 0) + border
                neighbours[k][j] = neighbours[k].get(j, 0) + border
        parent[i] = j
        sizes[j] += sizes[i]
        alive -= 1
        heapq.heappush(heap, (sizes[j], j))
    root = np.arange(n)
    for i in range(n):
        k = i
        while parent[k] != k:
            k = parent[k]
        root[i] = k
    return root[labels]


def _split_largest(labels: np.ndarray) -> np.ndarray:
    sizes = np.bincount(labels.reshape(-1))
    big = int(np.argmax(sizes))  # the first of equal sizes: deterministic
    ys, xs = np.nonzero(labels == big)  # raster order: sorted by row, then column
    if len(ys) < 2:
        return labels
    tall = ys.max() - ys.min() >= xs.max() - xs.min()
    order = np.arange(len(ys)) if tall else np.lexsort((ys, xs))  # by row (raster), or by column
    second = order[len(order) // 2 :]
    out = labels.copy()
    out[ys[second], xs[second]] = len(sizes)
    return out
