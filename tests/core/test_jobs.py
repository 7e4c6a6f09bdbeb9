"""Background jobs of the engine: a request submitted twice is one job and one computation, its map lands
in the cache with nobody waiting, Cancel from one watcher spares another's, errors reach whoever waits,
a cancelled job leaves neither a cache entry nor a hook, and the registry stays bounded."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import torch
from torch import nn

import saliency_core as sc
from saliency_core.engine.jobs import CANCELLED, DONE, FAILED, QUEUED, JobRegistry

WAIT = 60.0
SLOW = {"patch": 8, "stride": 2, "batch_size": 4}  # occlusion: 29 × 29 windows in ~210 batches
QUICK = {"patch": 16, "stride": 8}


@pytest.fixture
def engine() -> sc.Engine:
    return sc.Engine(device="cpu")


@contextmanager
def held(engine: sc.Engine, module: nn.Module) -> Iterator[None]:
    """Hold the model's lock: jobs submitted meanwhile stay queued (deterministic attach and cancel)."""
    lock = engine.resolve(module).lock
    lock.acquire()
    try:
        yield
    finally:
        lock.release()


def _no_hooks(module: nn.Module) -> None:
    for name, sub in module.named_modules():
        for attr in ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks"):
            assert not getattr(sub, attr), f"{attr} left on {name or 'the model'}"


def _until(predicate, seconds: float = WAIT) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_the_same_request_attaches_to_one_job_and_one_computation(
    engine: sc.Engine, resnet: nn.Module, image: torch.Tensor
) -> None:
    alone = sc.Engine(device="cpu")
    serial = alone.attribute(resnet, image, "occlusion", 3, **QUICK)
    engine.forward(resnet, image)  # the input's forward pass, outside the count below
    before = engine.forward_count
    with held(engine, resnet):
        first = engine.submit(resnet, image, "occlusion", 3, watcher="a", **QUICK)
        # batch_size changes how work is split, not the map: still the same request
        second = engine.submit(resnet, image, "occlusion", 3, watcher="b", batch_size=2, **QUICK)
        assert second is first
        assert first.state == QUEUED and not first.done
        assert first.watchers == {"a", "b"}
        assert engine.find_job(resnet, image, "occlusion", 3, **QUICK) is first
    got = first.result(WAIT)
    assert first.state == DONE and first.progress.fraction == 1.0
    # one computation: the passes of one serial run (its own forward pass was already cached here)
    assert engine.forward_count - before == alone.forward_count - 1
    assert torch.allclose(got.map, serial.map, rtol=1e-5, atol=1e-7)
    assert got.forward_passes == serial.forward_passes - 1
    # each caller gets its own copy
    got.map.zero_()
    assert torch.allclose(second.result().map, serial.map, rtol=1e-5, atol=1e-7)


def test_the_default_target_is_keyed_as_the_top_prediction(
    engine: sc.Engine, resnet: nn.Module, image: torch.Tensor
) -> None:
    top = int(engine.forward(resnet, image).argmax())
    with held(engine, resnet):
        implicit = engine.submit(resnet, image, "gradient")
        explicit = engine.submit(resnet, image, "gradient", top)
    assert implicit is explicit
    assert torch.equal(
        implicit.result(WAIT).map, sc.Engine(device="cpu").attribute(resnet, image, "gradient", top).map
    )


def test_the_map_lands_in_the_cache_after_the_submitter_stops_waiting(
    engine: sc.Engine, resnet: nn.Module, image: torch.Tensor
) -> None:
    seen: list[sc.Job] = []
    submitter = threading.Thread(
        target=lambda: seen.append(engine.submit(resnet, image, "occlusion", 2, watcher="left", **QUICK))
    )
    submitter.start()
    submitter.join(WAIT)  # the "page" is gone; nobody polls the job
    assert engine.lookup(resnet, image, "occlusion", 2, **QUICK) is None or seen[0].done
    _until(lambda: seen[0].done)
    cached = engine.lookup(resnet, image, "occlusion", 2, **QUICK)
    assert cached is not None and cached.cached
    serial = sc.Engine(device="cpu").attribute(resnet, image, "occlusion", 2, **QUICK)
    assert torch.allclose(cached.map, serial.map, rtol=1e-5, atol=1e-7)
    # asking again: a done job at once, and no pass
    before = engine.forward_count
    again = engine.submit(resnet, image, "occlusion", 2, **QUICK)
    assert again.done and again.state == DONE
    assert torch.allclose(again.result().map, serial.map, rtol=1e-5, atol=1e-7)
    assert engine.forward_count == before
    assert sc.Engine(device="cpu").lookup(resnet, image, "occlusion", 2, **QUICK) is None  # another engine


def test_cancel_from_one_watcher_spares_the_other(
    engine: sc.Engine, resnet: nn.Module, image: torch.Tensor
) -> None:
    with held(engine, resnet):
        job = engine.submit(resnet, image, "occlusion", 4, watcher="a", **QUICK)
        engine.submit(resnet, image, "occlusion", 4, watcher="b", **QUICK)
        assert job.cancel("a") is False  # b still waits for it
        assert not job.cancel_requested and job.watchers == {"b"}
    assert job.result(WAIT).map.shape == image.shape[-2:]
    assert engine.lookup(resnet, image, "occlusion", 4, **QUICK) is not None


def test_cancel_from_the_only_watcher_stops_the_job_and_stores_nothing(
    engine: sc.Engine, resnet: nn.Module, image: torch.Tensor
) -> None:
    job = engine.submit(resnet, image, "occlusion", 5, watcher="a", **SLOW)
    _until(lambda: job.progress.state == "running" and job.progress.fraction > 0)
    assert job.cancel("a") is True
    assert job.wait(WAIT)
    assert job.state == CANCELLED
    with pytest.raises(sc.Cancelled):
        job.result()
    assert engine.lookup(resnet, image, "occlusion", 5, **SLOW) is None
    _no_hooks(resnet)
    # a new request after a cancel starts a new job (and it completes)
    again = engine.submit(resnet, image, "occlusion", 5, watcher="a", **QUICK)
    assert again is not job and again.result(WAIT) is not None


def test_a_failure_reaches_whoever_waits(engine: sc.Engine, resnet: nn.Module, image: torch.Tensor) -> None:
    with held(engine, resnet):
        job = engine.submit(resnet, image, "occlusion", 6, patch=100)  # larger than the image
        other = engine.submit(resnet, image, "occlusion", 6, patch=100)
    assert other is job
    with pytest.raises(sc.InvalidParameter):
        job.result(WAIT)
    assert job.state == FAILED and isinstance(job.error, sc.InvalidParameter)
    _no_hooks(resnet)
    # a failed job is not attached to: asking again tries again
    assert engine.submit(resnet, image, "occlusion", 6, patch=100) is not job
    # requests that cannot start raise at once, with no job
    with pytest.raises(sc.UnknownMethod):
        engine.submit(resnet, image, "no_such_method", 0)
    with pytest.raises(sc.InvalidParameter):
        engine.submit(resnet, image, "occlusion", 0, patch="big")


def test_the_registry_is_bounded() -> None:
    registry = JobRegistry(keep_seconds=600, max_finished=3, max_per_group=2)
    for n in range(6):
        registry.submit(("quick", n), lambda progress, cancel, n=n: n).wait(WAIT)
    assert len(registry.jobs()) == 3
    assert [j.result() for j in registry.jobs()] == [3, 4, 5]  # the newest kept
    gate = threading.Event()

    def blocked(progress, cancel):
        progress(0.5, "waiting at the gate")
        gate.wait(WAIT)
        return "done"

    a = registry.submit(("slow", 1), blocked, group="model")
    registry.submit(("slow", 2), blocked, group="model")
    assert registry.submit(("slow", 1), blocked, group="model") is a  # attaching is not a new job
    with pytest.raises(sc.ResourceLimit):
        registry.submit(("slow", 3), blocked, group="model")
    registry.submit(("slow", 3), blocked, group="another model").cancel()
    _until(lambda: a.progress.fraction == 0.5)
    assert a.progress.message == "waiting at the gate" and a.progress.state == "running"
    gate.set()
    assert a.result(WAIT) == "done"
    old = JobRegistry(keep_seconds=0)
    old.submit("x", lambda progress, cancel: 1).wait(WAIT)
    time.sleep(0.01)
    assert old.jobs() == []  # finished jobs are kept only briefly


def test_generic_jobs_through_the_public_api() -> None:
    gate = threading.Event()
    calls: list[int] = []

    def work(progress, cancel):
        calls.append(1)
        for step in range(100):
            if cancel.is_set():
                raise sc.Cancelled("stopped")
            progress(step / 100, "steps")
            if step == 10:
                gate.wait(WAIT)
        return sum(range(100))

    job = sc.submit_job(("test_jobs", "generic"), work, label="sum", watcher="a")
    assert sc.submit_job(("test_jobs", "generic"), work, watcher="b") is job
    gate.set()
    assert job.result(WAIT) == 4950 and calls == [1]
    gate.clear()
    stopped = sc.submit_job(("test_jobs", "stopped"), work, watcher="a")
    _until(lambda: stopped.progress.fraction >= 0.1)
    stopped.cancel("a")
    gate.set()
    assert stopped.wait(WAIT) and stopped.state == CANCELLED
    with pytest.raises(sc.Cancelled):
        stopped.result()
