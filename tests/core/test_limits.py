"""Resource limits: defaults, the config file's [limits] table, environment overrides, and the message."""

from __future__ import annotations

import pytest

import saliency_core as sc


@pytest.fixture(autouse=True)
def _restore():
    previous = sc.limits()
    yield
    sc.set_limits(previous)


def test_environment_wins_over_the_config_file(tmp_path, monkeypatch) -> None:
    config = tmp_path / "saliency.toml"
    config.write_text("[limits]\nmax_pixels = 1000\nmax_batch_bytes = 4096\n", encoding="utf-8")
    monkeypatch.setenv("SALIENCY_CONFIG", str(config))
    monkeypatch.setenv("SALIENCY_LIMIT_MAX_PIXELS", "2e6")
    sc.set_limits()
    assert sc.limits().max_pixels == 2_000_000
    assert sc.limits().max_batch_bytes == 4096
    assert sc.limits().max_metric_steps == sc.Limits().max_metric_steps


def test_bad_values_warn_and_keep_the_default(monkeypatch) -> None:
    monkeypatch.setenv("SALIENCY_LIMIT_MAX_PIXELS", "lots")
    monkeypatch.setenv("SALIENCY_LIMIT_MAX_WORK_PIXELS", "-5")
    with pytest.warns(UserWarning):
        sc.set_limits()
    assert sc.limits().max_pixels == sc.Limits().max_pixels
    assert sc.limits().max_work_pixels == sc.Limits().max_work_pixels


def test_check_names_the_limit_and_refuses_non_finite_values() -> None:
    sc.set_limits(max_pixels=100)
    sc.limits().check("max_pixels", 100, "The image")
    with pytest.raises(sc.ResourceLimit, match=r"max_pixels") as caught:
        sc.limits().check("max_pixels", 101, "The image", "Downscale it.")
    assert caught.value.limit == "max_pixels" and "Downscale it." in str(caught.value)
    with pytest.raises(sc.ResourceLimit):
        sc.limits().check("max_pixels", float("nan"), "The image")
