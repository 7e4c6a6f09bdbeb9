"""Downloading weights: progress with size and time left, cancel, checksum, size limit, offline at once,
through a local HTTP server (and a file URL) standing in for the weights servers."""

from __future__ import annotations

import hashlib
import http.server
import threading
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import ClassVar

import pytest
import torch
from safetensors.torch import save_file

import saliency_core as sc
from saliency_core.models.download import MIRROR_ENV, fetch

TV_NAME = "resnet18-f37072fd.pth"  # what torchvision names the catalogue ResNet-18's file


class _Handler(http.server.SimpleHTTPRequestHandler):
    requests: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        _Handler.requests.append(self.path)
        if self.path.startswith("/short/"):  # announces more bytes than it sends
            self.send_response(200)
            self.send_header("Content-Length", "5000000")
            self.end_headers()
            self.wfile.write(b"x" * 1000)
            return
        super().do_GET()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    root = tmp_path / "served"
    root.mkdir()
    _Handler.requests = []
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(_Handler, directory=str(root)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", root
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def torch_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "torch"
    monkeypatch.setenv("TORCH_HOME", str(home))
    monkeypatch.delenv("SALIENCY_OFFLINE", raising=False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    return home / "hub" / "checkpoints"


def _blob(root: Path, name: str, size: int) -> bytes:
    data = bytes(range(256)) * (size // 256)
    (root / name).write_bytes(data)
    return data


def test_progress_reports_size_rate_and_time_left(server, tmp_path: Path) -> None:
    url, root = server
    data = _blob(root, "w.bin", 3 * 2**20 + 512)
    seen: list[sc.DownloadProgress] = []
    target = tmp_path / "out" / "w.bin"
    fetch(f"{url}/w.bin", target, hash_prefix=hashlib.sha256(data).hexdigest()[:8], progress=seen.append)
    assert target.read_bytes() == data
    assert [p.done for p in seen] == sorted(p.done for p in seen) and seen[-1].done == len(data)
    assert {p.total for p in seen} == {len(data)} and seen[-1].fraction == 1.0
    assert seen[0].eta is not None and seen[0].eta > 0
    assert "of 3.1 MB" in seen[0].describe() and "MB/s" in seen[0].describe()
    assert list(target.parent.iterdir()) == [target]  # no partial file left beside it


def test_cancel_stops_the_download_and_leaves_no_file(server, tmp_path: Path) -> None:
    url, root = server
    _blob(root, "w.bin", 4 * 2**20)
    seen: list[sc.DownloadProgress] = []
    target = tmp_path / "out" / "w.bin"
    with pytest.raises(sc.Cancelled):
        fetch(f"{url}/w.bin", target, progress=seen.append, cancel=lambda: len(seen) >= 1)
    assert len(seen) == 1 and seen[0].done < 4 * 2**20
    assert not target.exists() and list(target.parent.iterdir()) == []


def test_an_app_stop_inside_progress_also_removes_the_partial_file(server, tmp_path: Path) -> None:
    url, root = server
    _blob(root, "w.bin", 3 * 2**20)

    def stop(_progress: sc.DownloadProgress) -> None:
        raise KeyboardInterrupt  # what a Streamlit rerun does to a running script, in spirit

    target = tmp_path / "out" / "w.bin"
    with pytest.raises(KeyboardInterrupt):
        fetch(f"{url}/w.bin", target, progress=stop)
    assert list(target.parent.iterdir()) == []


def test_checksum_mismatch_size_limit_short_body_and_404_are_refused(server, tmp_path: Path) -> None:
    url, root = server
    _blob(root, "w.bin", 2 * 2**20)
    out = tmp_path / "out"
    with pytest.raises(sc.WeightsUnavailable, match="checksum"):
        fetch(f"{url}/w.bin", out / "w.bin", hash_prefix="00000000")
    previous = sc.set_limits(max_weights_bytes=2**20)
    try:
        with pytest.raises(sc.WeightsUnavailable, match="max_weights_bytes"):
            fetch(f"{url}/w.bin", out / "w.bin")
    finally:
        sc.set_limits(previous)
    with pytest.raises(sc.WeightsUnavailable, match="stopped after 1000 of 5000000 bytes"):
        fetch(f"{url}/short/w.bin", out / "w.bin")
    with pytest.raises(sc.WeightsUnavailable, match="answered 404"):
        fetch(f"{url}/missing.bin", out / "missing.bin")
    assert list(out.iterdir()) == []


def test_offline_says_so_at_once_without_a_request(server, torch_home, monkeypatch) -> None:
    url, _root = server
    monkeypatch.setenv(MIRROR_ENV, url)
    monkeypatch.setenv("SALIENCY_OFFLINE", "1")
    with pytest.raises(sc.WeightsUnavailable, match="offline"):
        sc.download_weights("resnet18")
    assert _Handler.requests == []


def test_an_unreachable_host_is_named_as_offline(torch_home, monkeypatch) -> None:
    monkeypatch.setenv(MIRROR_ENV, "http://no-such-host.invalid")
    with pytest.raises(sc.WeightsUnavailable, match="looks offline"):
        sc.download_weights("resnet18")


def test_catalogue_download_goes_to_torchvisions_cache_and_checks_its_hash(
    server, torch_home, monkeypatch
) -> None:
    url, root = server
    _blob(root, TV_NAME, 2**20)  # not the published file: its sha256 does not start with f37072fd
    monkeypatch.setenv(MIRROR_ENV, url)
    with pytest.raises(sc.WeightsUnavailable, match="checksum"):
        sc.download_weights("resnet18")
    assert _Handler.requests == [f"/{TV_NAME}"]
    assert not (torch_home / TV_NAME).exists()


def _timm_file(root: Path) -> tuple[str, dict[str, torch.Tensor]]:
    import timm

    torch.manual_seed(3)
    state = {k: v.contiguous() for k, v in timm.create_model("resnet18").state_dict().items()}
    name = "timm--timm--resnet18.a1_in1k--model.safetensors"
    save_file(state, str(root / name))
    return name, state


@pytest.mark.parametrize("scheme", ["http", "file"])
def test_timm_weights_download_then_load_as_the_models_default(
    server, torch_home, monkeypatch, scheme: str
) -> None:
    url, root = server
    name, state = _timm_file(root)
    monkeypatch.setenv(MIRROR_ENV, url if scheme == "http" else root.as_uri())
    assert not sc.model_info("timm:resnet18").weights_available
    seen: list[sc.DownloadProgress] = []
    path = sc.download_weights("timm:resnet18", progress=seen.append)
    assert path == torch_home / name and seen[-1].done == path.stat().st_size
    assert sc.model_info("timm:resnet18").weights_available
    model = sc.Engine(device="cpu").load_model("timm:resnet18")
    loaded = model.module.state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in state.items())
    assert len(model.categories) == 1000  # ImageNet names come with the pretrained head
    requests = len(_Handler.requests)
    assert sc.download_weights("timm:resnet18") == path  # already there: no second download
    assert len(_Handler.requests) == requests
