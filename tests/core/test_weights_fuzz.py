"""Hostile weights files: a zip bomb is refused from the archive's index, before anything is inflated, and
real checkpoints with flipped, cut, inserted or edited bytes give tensors or one SaliencyError, never a
raw RuntimeError, UnpicklingError, zip or struct error."""

from __future__ import annotations

import io
import re
import struct
import tempfile
import time
import tracemalloc
import zipfile
import zlib
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors.torch import save as save_safetensors

import saliency_core as sc
from saliency_core.models import checkpoints

BOMB_BLOCKS = (2**31 - 16) // 2064
BOMB_BYTES = 16 + 2064 * BOMB_BLOCKS  # just under 2 GiB of zeros
BOMB_CRC = 0x3EC16193  # zlib.crc32(bytes(BOMB_BYTES)): a second of hashing each run, so written down


class _Bits:
    """Deflate's bit stream: fields least significant bit first, Huffman codes most significant first."""

    def __init__(self) -> None:
        self.acc, self.count, self.out = 0, 0, bytearray()

    def put(self, value: int, width: int) -> None:
        self.acc |= value << self.count
        self.count += width
        while self.count >= 8:
            self.out.append(self.acc & 255)
            self.acc >>= 8
            self.count -= 8

    def code(self, code: int, width: int) -> None:
        self.put(int(f"{code:0{width}b}"[::-1], 2), width)

    def done(self) -> bytes:
        return bytes(self.out) + (bytes([self.acc]) if self.count else b"")


def deflated_zeros(blocks: int) -> bytes:
    """A raw deflate stream of 16 + 2064 × blocks zeros, written directly (zlib would take 10 s for 2 GiB).

    One fixed-Huffman block: a literal 0, a run of 12, then runs of 258 (13 bits each, so eight make 13
    bytes and the stream repeats byte for byte), a run of 3 and the end code.
    """
    head = _Bits()
    head.put(1, 1)  # the final block
    head.put(1, 2)  # fixed Huffman codes
    head.code(0b00110000, 8)  # literal 0
    head.code(0b0001001, 7)  # length code 265 ...
    head.put(1, 1)  # ... + 1: a run of 12
    head.code(0, 5)  # at distance 1
    assert head.count == 0  # 24 bits: the repeating part starts on a byte
    run = _Bits()
    for _ in range(8):
        run.code(0b11000101, 8)  # length code 285: a run of 258
        run.code(0, 5)
    tail = _Bits()
    tail.code(0b0000001, 7)  # length code 257: a run of 3
    tail.code(0, 5)
    tail.code(0, 7)  # end of block
    return head.done() + run.done() * blocks + tail.done()


def write_zip(path: Path, records: list[tuple[str, bytes, int, int, int]]) -> None:
    """A zip of (name, bytes as stored, crc, unpacked size, method) records, written field by field."""
    body, central = bytearray(), bytearray()
    for name, raw, crc, size, method in records:
        fn = name.encode()
        central += struct.pack(
            "<4s6H3L5H2L", b"PK\x01\x02", 20, 20, 0, method, 0, 0x21, crc, len(raw), size, len(fn), 0, 0, 0, 0, 0,
            len(body),
        ) + fn  # fmt: skip
        body += struct.pack(
            "<4s5H3L2H", b"PK\x03\x04", 20, 0, method, 0, 0x21, crc, len(raw), size, len(fn), 0
        )
        body += fn + raw
    end = struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, len(records), len(records), len(central), len(body), 0)
    path.write_bytes(bytes(body + central + end))


def torch_bomb(path: Path, blocks: int, crc: int, data: bytes | None = None) -> int:
    """torch.save's layout for {"w": float zeros}, its data record deflated (or `data`, stored): returns
    the number of bytes the pickle claims."""
    size = 16 + 2064 * blocks
    buffer = io.BytesIO()
    torch.save({"w": torch.zeros(1000003)}, buffer)
    records = []
    with zipfile.ZipFile(buffer) as saved:
        for info in saved.infolist():
            raw = saved.read(info)
            if info.filename.endswith("data/0"):
                if data is None:
                    records.append((info.filename, deflated_zeros(blocks), crc, size, zipfile.ZIP_DEFLATED))
                    continue
                raw = data
            if info.filename.endswith("data.pkl"):  # the storage's element count and the tensor's size
                old = b"J" + struct.pack("<i", 1000003)
                assert raw.count(old) == 2
                raw = raw.replace(old, b"J" + struct.pack("<i", size // 4))
            records.append((info.filename, raw, zlib.crc32(raw), len(raw), zipfile.ZIP_STORED))
    write_zip(path, records)
    return size


def test_the_bomb_layout_is_a_real_torch_archive(tmp_path) -> None:
    assert zlib.decompress(deflated_zeros(3), -15) == bytes(16 + 2064 * 3)
    path = tmp_path / "small-bomb.pth"
    size = torch_bomb(path, 3, zlib.crc32(bytes(16 + 2064 * 3)))
    assert torch.equal(torch.load(path, weights_only=True)["w"], torch.zeros(size // 4))  # torch inflates it


def test_a_zip_bomb_is_refused_from_its_index_quickly(tmp_path, monkeypatch) -> None:
    path = tmp_path / "bomb.pth"
    assert torch_bomb(path, BOMB_BLOCKS, BOMB_CRC) == BOMB_BYTES
    assert path.stat().st_size < 14 * 2**20  # 13 MiB that once read held 2 GiB (+2 GB RSS, 8 s)

    def inflating(*args, **kwargs):
        raise AssertionError("torch.load was reached: the archive was read before its index was checked")

    monkeypatch.setattr(torch, "load", inflating)
    tracemalloc.start()
    started = time.perf_counter()
    try:
        with pytest.raises(
            sc.InvalidWeights, match=r"compressed record, archive/data/0, .* 2147482624 bytes"
        ):
            checkpoints.read_checkpoint(path)
        seconds = time.perf_counter() - started
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert seconds < 2.0 and peak < 50 * 2**20


def test_a_storage_claimed_larger_than_its_record_is_refused_before_allocating(tmp_path) -> None:
    path = tmp_path / "claim.pth"
    assert torch_bomb(path, BOMB_BLOCKS, 0, data=bytes(16)) == BOMB_BYTES  # 2 GiB claimed over 16 bytes
    started = time.perf_counter()
    with pytest.raises(sc.InvalidWeights, match=r"record size \(16 bytes\) does not match"):
        checkpoints.read_checkpoint(path)
    assert time.perf_counter() - started < 2.0


class Tiny(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(1, 2, 3)
        self.bn = torch.nn.BatchNorm2d(2)


def _seeds() -> dict[str, bytes]:
    torch.manual_seed(0)
    state = Tiny().state_dict()
    zipped, legacy = io.BytesIO(), io.BytesIO()
    torch.save(state, zipped)
    torch.save(state, legacy, _use_new_zipfile_serialization=False)
    return {"pth": zipped.getvalue(), "legacy.pth": legacy.getvalue(), "safetensors": save_safetensors(state)}


SEEDS = _seeds()
NUMBERS = [b"0", b"1", b"3", b"4096", b"2147483648", b"18446744073709551616", b"-1", b"1e9"]
OPS = st.one_of(
    st.tuples(st.just("flip"), st.floats(0, 1, exclude_max=True), st.integers(0, 7)),
    st.tuples(st.just("set"), st.floats(0, 1, exclude_max=True), st.integers(0, 255)),
    st.tuples(st.just("cut"), st.floats(0, 1, exclude_max=True), st.just(0)),
    st.tuples(st.just("insert"), st.floats(0, 1, exclude_max=True), st.binary(min_size=1, max_size=16)),
    st.tuples(st.just("delete"), st.floats(0, 1, exclude_max=True), st.integers(1, 64)),
    st.tuples(st.just("number"), st.integers(0, 200), st.sampled_from(NUMBERS)),
)


def mutate(data: bytes, op: tuple, index: bool) -> bytes:
    """One edit; with `index`, positions fall in the part that describes the rest (header, zip directory)."""
    kind, where, what = op
    if kind == "number":  # a size, offset or count in the text of a header or directory replaced
        found = list(re.finditer(rb"\d+", data[:4096]))
        if not found:
            return data
        m = found[where % len(found)]
        return data[: m.start()] + what + data[m.end() :]
    span = (0, min(len(data), 256)) if index else (0, len(data))
    if index and data.startswith(b"PK"):
        span = (max(0, len(data) - 1024), len(data))  # the central directory is at the end
    pos = span[0] + int(where * (span[1] - span[0]))
    if kind == "flip":
        return data[:pos] + bytes([data[pos] ^ (1 << what)]) + data[pos + 1 :]
    if kind == "set":
        return data[:pos] + bytes([what]) + data[pos + 1 :]
    if kind == "cut":
        return data[:pos]
    if kind == "insert":
        return data[:pos] + what + data[pos:]
    return data[:pos] + data[pos + what :]


@pytest.fixture(scope="module")
def folder():
    with tempfile.TemporaryDirectory() as name:
        yield Path(name)


@pytest.mark.timeout(120)
@pytest.mark.filterwarnings("ignore")  # torch's notes on the odd files it is given
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.sampled_from(sorted(SEEDS)), ops=st.lists(OPS, min_size=1, max_size=3), index=st.booleans())
def test_mutated_checkpoints_give_tensors_or_one_clear_error(folder, seed, ops, index) -> None:
    data = SEEDS[seed]
    for op in ops:
        data = mutate(data, op, index) if data else data
    path = folder / f"mutated.{seed}"
    path.write_bytes(data)
    try:
        state = checkpoints.read_checkpoint(path)
    except sc.SaliencyError as exc:
        assert "weights_only=False" not in str(exc) and str(exc)
        return
    for key, tensor in state.items():
        assert isinstance(key, str) and type(tensor) is torch.Tensor and tensor.layout == torch.strided
        assert tensor.device.type == "cpu" and not tensor.is_quantized
        if tensor.is_floating_point():
            assert bool(torch.isfinite(tensor.float()).all())
    try:
        module = checkpoints.load_checked(Tiny(), state, "The weights file")
    except sc.InvalidWeights:
        return
    loaded = module.state_dict()
    assert all(torch.equal(loaded[k], v.to(loaded[k].dtype)) for k, v in state.items())
