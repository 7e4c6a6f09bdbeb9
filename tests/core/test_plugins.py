"""Plugins come from the operator's configuration (SALIENCY_PLUGINS, saliency.toml), load once, and a
broken one is reported without stopping the others. The plugins here register nothing (they count their
imports), so the process-wide registries stay as the other tests expect them."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from saliency_core import plugins

COUNTER = """
import builtins
builtins.__dict__.setdefault("_plugin_imports", []).append({name!r})
"""


def _plugin(folder: Path, name: str, body: str | None = None) -> Path:
    path = folder / f"{name}.py"
    path.write_text(body if body is not None else COUNTER.format(name=name), encoding="utf-8")
    return path


def _imports() -> list[str]:
    import builtins

    return builtins.__dict__.setdefault("_plugin_imports", [])


def test_environment_lists_files_and_modules_and_each_loads_once(tmp_path, monkeypatch) -> None:
    first = _plugin(tmp_path, "first_env_plugin")
    _plugin(tmp_path, "second_env_module")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv(plugins.ENV, f"{first}, second_env_module")
    monkeypatch.setenv(plugins.CONFIG_ENV, str(tmp_path / "absent.toml"))
    assert plugins.configured() == [(str(first), "environment"), ("second_env_module", "environment")]
    before = list(_imports())
    status = {s.entry: s for s in plugins.load_plugins()}
    assert status[str(first)].loaded and status["second_env_module"].loaded
    plugins.load_plugins()  # a second start-up imports nothing again
    assert _imports()[len(before) :] == ["first_env_plugin", "second_env_module"]
    assert "second_env_module" in sys.modules


def test_config_file_paths_are_relative_to_the_file(tmp_path, monkeypatch) -> None:
    (tmp_path / "plugins").mkdir()
    _plugin(tmp_path / "plugins", "config_plugin")
    config = tmp_path / "saliency.toml"
    config.write_text('plugins = ["plugins/config_plugin.py"]\n', encoding="utf-8")
    monkeypatch.delenv(plugins.ENV, raising=False)
    monkeypatch.setenv(plugins.CONFIG_ENV, str(config))
    expected = str(tmp_path.resolve() / "plugins" / "config_plugin.py")
    assert plugins.configured() == [(expected, str(config))]
    status = {s.entry: s for s in plugins.load_plugins()}
    assert status[expected].loaded and status[expected].source == str(config)
    assert "config_plugin" in _imports()


def test_config_file_in_the_working_directory_is_read_by_default(tmp_path, monkeypatch) -> None:
    _plugin(tmp_path, "cwd_plugin")
    (tmp_path / plugins.CONFIG_FILE).write_text('plugins = "cwd_plugin.py"\n', encoding="utf-8")
    monkeypatch.delenv(plugins.ENV, raising=False)
    monkeypatch.delenv(plugins.CONFIG_ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    assert [e for e, _ in plugins.configured()] == [str(tmp_path.resolve() / "cwd_plugin.py")]


def test_a_broken_plugin_is_reported_and_the_others_still_load(tmp_path, monkeypatch) -> None:
    broken = _plugin(tmp_path, "broken_plugin", "raise RuntimeError('the team forgot a dependency')\n")
    missing = tmp_path / "missing_plugin.py"
    fine = _plugin(tmp_path, "fine_plugin")
    monkeypatch.setenv(plugins.ENV, ",".join(map(str, (broken, missing, fine, "no_such_module_xyz"))))
    monkeypatch.setenv(plugins.CONFIG_ENV, str(tmp_path / "absent.toml"))
    with pytest.warns(UserWarning, match="failed to load"):
        status = {s.entry: s for s in plugins.load_plugins()}
    assert not status[str(broken)].loaded and "the team forgot a dependency" in status[str(broken)].error
    assert not status[str(missing)].loaded and "no such file" in status[str(missing)].error
    assert (
        not status["no_such_module_xyz"].loaded
        and "ModuleNotFoundError" in status["no_such_module_xyz"].error
    )
    assert status[str(fine)].loaded and "fine_plugin" in _imports()
    assert not any(name.startswith("saliency_plugin_broken_plugin") for name in sys.modules)


def test_a_malformed_config_file_is_a_warning_not_a_crash(tmp_path, monkeypatch) -> None:
    config = tmp_path / "saliency.toml"
    config.write_text("plugins = [1, 2]\n", encoding="utf-8")
    monkeypatch.delenv(plugins.ENV, raising=False)
    monkeypatch.setenv(plugins.CONFIG_ENV, str(config))
    with pytest.warns(UserWarning, match="must be a list"):
        assert plugins.configured() == []
    config.write_text("plugins = [\n", encoding="utf-8")
    with pytest.warns(UserWarning, match="could not be read"):
        assert plugins.configured() == []
