"""Uploaded files are written into a folder private to the process, as new files only this user can read,
and never through a link someone planted at the old shared path or at the new name."""

from __future__ import annotations

import hashlib
import os
import stat
import tempfile
from pathlib import Path

import pytest

import saliency_core as sc
from ui.sidebar import custom_model, weights_files

DATA = b"not weights at all"  # refused by the reader after it was written
DIGEST = hashlib.sha256(DATA).hexdigest()


@pytest.fixture
def target(tmp_path: Path) -> Path:
    path = tmp_path / "precious.txt"
    path.write_bytes(b"keep me")
    return path


def test_the_folder_is_private_and_files_are_new_and_private(monkeypatch) -> None:
    seen = {}

    def load_model(model_id: str, weights: str, **options: object) -> str:
        info = os.lstat(weights)
        seen.update(mode=stat.S_IMODE(info.st_mode), regular=stat.S_ISREG(info.st_mode))
        seen["data"] = Path(weights).read_bytes()
        return "model"

    monkeypatch.setattr(sc, "load_model", load_model)
    folder = weights_files.folder()
    assert folder == weights_files.folder()  # one folder per process
    assert folder.name.startswith(weights_files.FOLDER_PREFIX) and folder.parent == Path(
        tempfile.gettempdir()
    )
    assert stat.S_IMODE(os.lstat(folder).st_mode) == 0o700
    model, upload = weights_files.load("timm:resnet18", DATA, "mine.pth")
    assert model == "model" and seen == {"mode": 0o600, "regular": True, "data": DATA}
    assert upload.sha256 == DIGEST and Path(upload.key).parent == folder
    assert not Path(upload.key).exists()  # deleted once loaded: the engine keeps the model


def test_a_link_at_the_old_shared_path_is_not_followed(target) -> None:
    old = Path(tempfile.gettempdir()) / "saliency-dashboard-weights"
    made = not old.exists()
    old.mkdir(exist_ok=True)
    planted = old / f"timm_resnet18-{DIGEST[:16]}.pth"
    planted.unlink(missing_ok=True)
    planted.symlink_to(target)
    try:
        with pytest.raises(sc.InvalidWeights, match=r"Could not read mine\.pth as weights"):
            weights_files.load("timm:resnet18", DATA, "mine.pth")
        assert target.read_bytes() == b"keep me" and planted.is_symlink()
    finally:
        planted.unlink()
        if made:
            old.rmdir()


def test_a_link_at_the_new_name_is_replaced_not_followed(target) -> None:
    planted = weights_files.folder() / f"timm_resnet18-{DIGEST[:16]}.pth"
    planted.symlink_to(target)
    with pytest.raises(sc.InvalidWeights) as err:
        weights_files.load("timm:resnet18", DATA, "mine.pth")
    assert "mine.pth" in str(err.value) and str(weights_files.folder()) not in str(err.value)
    assert target.read_bytes() == b"keep me" and not planted.exists() and not planted.is_symlink()


def test_class_name_files_are_kept_without_following_links(target) -> None:
    names = b"ant\nbee\n"
    planted = weights_files.folder() / f"classes-{hashlib.sha256(names).hexdigest()[:16]}.txt"
    planted.symlink_to(target)
    kept = Path(custom_model._keep_names(names, "names.txt"))
    assert kept == planted and not kept.is_symlink() and kept.read_bytes() == names
    assert target.read_bytes() == b"keep me" and stat.S_IMODE(os.lstat(kept).st_mode) == 0o600
    assert custom_model._keep_names(names, "names.txt") == str(kept)  # kept once, found again


def test_a_size_limit_stays_a_resource_limit_naming_the_users_file() -> None:
    previous = sc.limits()
    sc.set_limits(max_weights_bytes=8)
    try:
        with pytest.raises(sc.ResourceLimit, match=r"The weights file mine\.pth is 18 bytes, over"):
            weights_files.load("timm:resnet18", DATA, "mine.pth")
    finally:
        sc.set_limits(previous)
