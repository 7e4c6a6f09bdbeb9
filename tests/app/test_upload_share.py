"""Share links to uploaded images: kept in a bounded, content-addressed store on the server, reopened by
`upload=<sha256>`, with a message when the link is bogus or its image is gone."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import numpy as np
import pytest
from app_helpers import texts
from PIL import Image

from ui import state, uploads


def _png(seed: int, side: int = 96) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (side, side, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> uploads.UploadStore:
    made = uploads.UploadStore(tmp_path / "uploads", 50 << 20, 100)
    monkeypatch.setattr(uploads, "_STORE", made)
    return made


def test_the_store_is_content_addressed_and_keeps_its_bounds(tmp_path: Path) -> None:
    blobs = [_png(i) for i in range(6)]
    size = max(len(b) for b in blobs)
    kept = uploads.UploadStore(tmp_path / "s", max_bytes=3 * size, max_files=4)
    digests = [kept.put(b) for b in blobs[:3]]
    assert digests == [hashlib.sha256(b).hexdigest() for b in blobs[:3]]
    assert kept.put(blobs[0]) == digests[0]  # the same bytes: one file, now the most recent
    assert kept.usage()[0] == 3
    kept.put(blobs[3])  # over 3 × size: the least recently used (blobs[1]) goes
    assert kept.get(digests[1]) is None and kept.get(digests[0]) == blobs[0]
    files, total = kept.usage()
    assert total <= 3 * size and files <= 4
    assert sorted(p.stem for p in (tmp_path / "s").glob("*.img")) == sorted(
        d for d in [*digests, hashlib.sha256(blobs[3]).hexdigest()] if d in kept
    )
    by_count = uploads.UploadStore(tmp_path / "c", max_bytes=1 << 30, max_files=2)
    for b in blobs:
        by_count.put(b)
    assert by_count.usage()[0] == 2 and by_count.get(hashlib.sha256(blobs[-1]).hexdigest()) == blobs[-1]
    assert len(list((tmp_path / "c").glob("*"))) == 2
    # A restarted server finds the files of its configured folder again.
    again = uploads.UploadStore(tmp_path / "c", max_bytes=1 << 30, max_files=2)
    assert again.get(hashlib.sha256(blobs[-1]).hexdigest()) == blobs[-1]


def test_only_a_sha256_hex_digest_is_looked_up(tmp_path: Path) -> None:
    kept = uploads.UploadStore(tmp_path, 1 << 20, 10)
    digest = kept.put(b"data")
    for bad in ("../" + digest[3:], digest.upper(), digest[:-1], digest + "0", "", f"{digest[:-1]}/"):
        assert not uploads.valid_digest(bad) and kept.get(bad) is None
    assert kept.get(digest) == b"data"
    (tmp_path / f"{digest}.img").write_bytes(b"changed")  # tampered with on disk: not the linked picture
    assert kept.get(digest) is None


def test_an_uploaded_image_is_shared_and_reopened_in_a_new_session(app, store) -> None:
    data = _png(7)
    at = app()
    at.button_group(key=state.SOURCE).set_value("Upload").run()
    at.file_uploader(key="act.upload").set_value(("mine.png", data, "image/png")).run()
    assert not at.exception, [e.value for e in at.exception]
    digest = hashlib.sha256(data).hexdigest()
    assert at.session_state[state.IMAGE].digest == digest
    query = dict(at.query_params)
    assert query.get("upload") == digest and "sample" not in query
    assert f"upload={digest}" in at.code[0].value
    assert store.get(digest) == data

    other = app(query=query)  # a new session opening the link
    image = other.session_state[state.IMAGE]
    assert image.source == "upload" and image.digest == digest and image.data == data
    assert other.session_state[state.METHOD] == at.session_state[state.METHOD]
    assert np.array_equal(other.session_state[state.VIEW].picture, at.session_state[state.VIEW].picture)
    assert "could not be used" not in texts(other)


def test_a_bogus_or_forgotten_upload_link_says_so(app, store) -> None:
    at = app(query={"upload": "../../etc/passwd", "model": "shapes_demo"})
    said = texts(at)
    assert "is not an image reference (64 hex characters)" in said and "upload '../../etc/passwd'" in said
    assert at.session_state[state.IMAGE].source == "sample"  # the session starts as usual
    gone = hashlib.sha256(b"never uploaded").hexdigest()
    at = app(query={"upload": gone, "model": "shapes_demo"})
    assert "no longer on this server" in texts(at) and not at.exception
