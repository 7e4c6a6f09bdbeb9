"""Downloading pretrained weights with progress (size, speed, time left), cancel and a size bound.

One path for torchvision's files and timm's (Hugging Face or URL): the file is written next to its final
place under a private name and moved there only when complete and its hash prefix matches, so a cancelled
or broken download never leaves a file that looks cached. SALIENCY_WEIGHTS_MIRROR=<base URL> (http, https
or file) fetches every file by its name from an operator's mirror instead of the public servers.
"""

from __future__ import annotations

import hashlib
import os
import socket
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..errors import Cancelled, WeightsUnavailable
from ..limits import limits

MIRROR_ENV = "SALIENCY_WEIGHTS_MIRROR"
OFFLINE_ENV = "SALIENCY_OFFLINE"
CHUNK = 1 << 20
TIMEOUT_S = 15.0  # per network read: an unreachable host fails at once, a stalled one within this


@dataclass(frozen=True)
class DownloadProgress:
    """Where a download stands: bytes so far, the total when the server says it, seconds spent."""

    name: str
    done: int
    total: int | None
    seconds: float

    @property
    def fraction(self) -> float | None:
        return min(self.done / self.total, 1.0) if self.total else None

    @property
    def rate(self) -> float:
        """Bytes per second so far."""
        return self.done / self.seconds if self.seconds > 0 else 0.0

    @property
    def eta(self) -> float | None:
        """Seconds left at the rate so far (None: unknown)."""
        if not self.total or self.rate <= 0:
            return None
        return max(self.total - self.done, 0) / self.rate

    def describe(self) -> str:
        """E.g. "resnet18.pth: 12.3 of 44.7 MB · 3.1 MB/s · about 11 s left"."""
        size = f"{_mb(self.done)} of {_mb(self.total)} MB" if self.total else f"{_mb(self.done)} MB"
        parts = [f"{self.name}: {size}"]
        if self.rate > 0:
            parts.append(f"{self.rate / 1e6:.1f} MB/s")
        if self.eta is not None and self.done < (self.total or 0):
            parts.append(f"about {_duration(self.eta)} left")
        return " · ".join(parts)


ProgressFn = Callable[[DownloadProgress], None]
CancelFn = Callable[[], bool]


def _mb(n: int | None) -> str:
    return f"{(n or 0) / 1e6:.1f}"


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.0f} min"


def offline_reason() -> str:
    """Why this process will not download ("" when it may try)."""
    if os.environ.get(OFFLINE_ENV):
        return f"this server is set to work offline ({OFFLINE_ENV} is set)"
    if os.environ.get("HF_HUB_OFFLINE") and not os.environ.get(MIRROR_ENV):
        return "this server is set to work offline (HF_HUB_OFFLINE is set)"
    return ""


def source_url(url: str, file_name: str) -> str:
    """The URL a file is fetched from: the operator's mirror when set, else its own."""
    mirror = os.environ.get(MIRROR_ENV, "").strip()
    return f"{mirror.rstrip('/')}/{urllib.parse.quote(file_name)}" if mirror else url


def fetch(
    url: str,
    target: Path,
    *,
    hash_prefix: str | None = None,
    progress: ProgressFn | None = None,
    cancel: CancelFn | None = None,
) -> Path:
    """Download `url` to `target` (atomically), reporting progress; raises WeightsUnavailable or Cancelled.

    The size is bounded by limits().max_weights_bytes, checked against the announced length before the
    first byte and against the bytes received while reading.
    """
    reason = offline_reason()
    if reason:
        raise WeightsUnavailable(
            f"The file {target.name} is not in {target.parent}, and it cannot be downloaded: {reason}. "
            f"Download {url} on a machine with internet access and put it there as {target.name} (or set "
            "TORCH_HOME to a folder whose hub/checkpoints holds it).",
            file_name=target.name,
            folder=str(target.parent),
        )
    url = source_url(url, target.name)
    limit = limits().max_weights_bytes
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, partial = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent)
    started = time.perf_counter()
    try:
        with os.fdopen(fd, "wb") as out, _open(url, target) as response:
            total = _length(response)
            if total is not None and total > limit:
                raise WeightsUnavailable(
                    f"{target.name} is {total / 2**20:.0f} MiB, over this server's "
                    f"{limit / 2**20:.0f} MiB limit for weights files (max_weights_bytes).",
                    file_name=target.name,
                    folder=str(target.parent),
                )
            digest, done = hashlib.sha256(), 0
            while True:
                if cancel is not None and cancel():
                    raise Cancelled(f"The download of {target.name} was cancelled.")
                try:
                    chunk = response.read(CHUNK)
                except (TimeoutError, OSError) as exc:
                    raise _unavailable(target, url, exc) from None
                if not chunk:
                    break
                done += len(chunk)
                if done > limit:
                    raise WeightsUnavailable(
                        f"{target.name} is larger than this server's {limit / 2**20:.0f} MiB limit for "
                        "weights files (max_weights_bytes); the download was stopped.",
                        file_name=target.name,
                        folder=str(target.parent),
                    )
                digest.update(chunk)
                out.write(chunk)
                if progress is not None:
                    progress(DownloadProgress(target.name, done, total, time.perf_counter() - started))
        if total is not None and done != total:
            raise WeightsUnavailable(
                f"The download of {target.name} stopped after {done} of {total} bytes; try again.",
                file_name=target.name,
                folder=str(target.parent),
            )
        if hash_prefix and not digest.hexdigest().startswith(hash_prefix):
            raise WeightsUnavailable(
                f"The downloaded {target.name} does not match its published checksum ({hash_prefix}…); "
                "it was discarded.",
                file_name=target.name,
                folder=str(target.parent),
            )
        os.replace(partial, target)
    finally:
        # Cancelled, failed, or stopped by the app (a rerun raises inside `progress`): no half file stays.
        if os.path.exists(partial):
            os.unlink(partial)
    return target


def _open(url: str, target: Path):  # type: ignore[no-untyped-def]
    if urllib.parse.urlparse(url).scheme not in ("http", "https", "file"):
        raise WeightsUnavailable(f"Cannot download {target.name} from {url}: only http(s) and file URLs.")
    try:
        return urllib.request.urlopen(url, timeout=TIMEOUT_S)
    except (OSError, ValueError) as exc:
        raise _unavailable(target, url, exc) from None


def _length(response: object) -> int | None:
    headers = getattr(response, "headers", None)
    value = headers.get("Content-Length") if headers is not None else None
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def _unavailable(target: Path, url: str, exc: BaseException) -> WeightsUnavailable:
    host = urllib.parse.urlparse(url).netloc or url
    if isinstance(exc, urllib.error.HTTPError):
        why = f"the server answered {exc.code} {exc.reason}"
    elif isinstance(getattr(exc, "reason", None), socket.gaierror) or isinstance(exc, socket.gaierror):
        why = f"{host} cannot be found: this machine looks offline"
    elif isinstance(exc, (TimeoutError, socket.timeout)) or "timed out" in str(exc):
        why = f"{host} did not answer within {TIMEOUT_S:.0f} s"
    else:
        why = f"{type(exc).__name__}: {getattr(exc, 'reason', exc)}"
    error = WeightsUnavailable(
        f"{target.name} could not be downloaded from {host} ({why}). Download {url} on a machine with "
        f"internet access and put it in {target.parent} as {target.name}.",
        file_name=target.name,
        folder=str(target.parent),
    )
    error.offline = "looks offline" in why  # type: ignore[attr-defined]
    return error


def download_weights(
    model_id: str,
    *,
    progress: ProgressFn | None = None,
    cancel: CancelFn | None = None,
) -> Path:
    """Download a model's default weights where `load_model` looks for them; the file's path.

    For catalogue models with torchvision weights and for torchvision:/timm: ids. A file already there
    is returned without a download. Raises WeightsUnavailable (offline, not downloadable, failed, over
    the size limit) or Cancelled.
    """
    from .registry import get_spec
    from .weights import cached_file_for

    spec = get_spec(model_id)
    path = spec.weights_path()
    if path is not None and path.is_file():
        return path
    if spec.weights_enum is not None:
        url = spec.weights_enum().url
        target = cached_file_for(url)
        stem = target.name.rsplit(".", 1)[0]
        candidates = [(url, target, stem.rsplit("-", 1)[-1] if "-" in stem else None)]
    else:
        found = spec.extra.get("downloads")
        candidates = list(found()) if callable(found) else []
    if not candidates:
        raise WeightsUnavailable(
            f"{spec.title} has no weights to download"
            + (f": {path.name} must be placed in {path.parent} by hand." if path is not None else ".")
        )
    failure: WeightsUnavailable | None = None
    for url, target, prefix in candidates:
        try:
            return fetch(url, target, hash_prefix=prefix, progress=progress, cancel=cancel)
        except WeightsUnavailable as exc:  # e.g. a Hub repo with only pytorch_model.bin: try the next
            failure = failure or exc
            if offline_reason() or getattr(exc, "offline", False):
                break  # no other server will answer either
    assert failure is not None
    raise failure
