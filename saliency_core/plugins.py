"""Plugins: Python files or importable modules that register methods, models or tasks at start-up.

Plugins are code, so they come only from the operator's configuration, never from a user's upload:
the `SALIENCY_PLUGINS` environment variable (entries separated by commas or the OS path separator) and the
`plugins = [...]` list of the config file (`$SALIENCY_CONFIG`, else `saliency.toml` in the working
directory, which is where `streamlit run app.py` starts). They are imported once per process, the first time
the library lists or looks up a method or model, after the built-in ones are registered.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import os
import pkgutil
import re
import sys
import threading
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

ENV = "SALIENCY_PLUGINS"
CONFIG_ENV = "SALIENCY_CONFIG"
CONFIG_FILE = "saliency.toml"

_log = logging.getLogger(__name__)
_lock = threading.RLock()
_loading = False
_status: dict[str, PluginStatus] = {}
_imported_packages: set[str] = set()


@dataclass(frozen=True)
class PluginStatus:
    """One configured plugin: where it was configured, and whether it loaded (else why not)."""

    entry: str
    source: str  # "environment" | the config file's path | "call"
    loaded: bool
    error: str = ""


def config_path() -> Path:
    """The config file the library reads (it need not exist)."""
    return Path(os.environ.get(CONFIG_ENV) or CONFIG_FILE)


def configured() -> list[tuple[str, str]]:
    """(entry, source) of every configured plugin: the environment's first, then the config file's."""
    out = [(e, "environment") for e in _split(os.environ.get(ENV, ""))]
    path = config_path()
    if path.is_file():
        for entry in _config_entries(path):
            out.append((entry, str(path)))
    seen: set[str] = set()
    return [(e, s) for e, s in out if not (e in seen or seen.add(e))]


def _split(text: str) -> list[str]:
    return [part.strip() for part in re.split(rf"[,{re.escape(os.pathsep)}]", text) if part.strip()]


def read_config(path: Path | None = None) -> dict:
    """The config file's settings ({} when there is none, or it cannot be read: a warning says why)."""
    path = config_path() if path is None else path
    if not path.is_file():
        return {}
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        warnings.warn(f"{path}: reading a config file needs Python 3.11 (tomllib).", stacklevel=3)
        return {}
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        warnings.warn(f"The config file {path} could not be read: {exc}", stacklevel=3)
        return {}


def _config_entries(path: Path) -> list[str]:
    data = read_config(path)
    entries = data.get("plugins", [])
    if isinstance(entries, str):
        entries = [entries]
    if not isinstance(entries, list) or not all(isinstance(e, str) for e in entries):
        warnings.warn(f"{path}: 'plugins' must be a list of file paths or module names.", stacklevel=3)
        return []
    base = path.resolve().parent
    # Relative file paths are relative to the config file, as an operator would expect.
    return [str(base / e) if e.endswith(".py") and not Path(e).is_absolute() else e for e in entries]


def load_plugins(entries: list[str] | None = None) -> list[PluginStatus]:
    """Import the configured plugins (or `entries`) not imported yet; return the status of every plugin.

    A plugin that fails to import is reported (a warning, and `plugin_status()`), not raised: one team's
    broken plugin must not take the dashboard down for everyone.
    """
    global _loading
    wanted = [(e, "call") for e in entries] if entries is not None else configured()
    with _lock:
        if _loading:  # a plugin that lists methods while it is being imported
            return list(_status.values())
        _loading = True
        try:
            for entry, source in wanted:
                if entry not in _status:
                    _status[entry] = _load_one(entry, source)
        finally:
            _loading = False
        return list(_status.values())


def plugin_status() -> list[PluginStatus]:
    """Every plugin imported (or tried) in this process, in order."""
    with _lock:
        return list(_status.values())


def _load_one(entry: str, source: str) -> PluginStatus:
    try:
        if entry.endswith(".py") or os.sep in entry:
            path = Path(entry).expanduser()
            if not path.is_file():
                raise FileNotFoundError(f"no such file: {path}")
            stem = re.sub(r"\W", "_", path.stem)
            name = f"saliency_plugin_{stem}_{abs(hash(str(path.resolve()))):x}"
            spec = importlib.util.spec_from_file_location(name, path)
            if spec is None or spec.loader is None:
                raise ImportError(f"cannot import {path}")
            module = importlib.util.module_from_spec(spec)
            sys.modules[name] = module
            try:
                spec.loader.exec_module(module)
            except BaseException:
                sys.modules.pop(name, None)
                raise
        else:
            importlib.import_module(entry)
    except Exception as exc:
        message = f"{type(exc).__name__}: {exc}"
        _log.exception("Plugin %s failed to load", entry)
        warnings.warn(f"Plugin {entry} (from {source}) failed to load: {message}", stacklevel=4)
        return PluginStatus(entry, source, False, message)
    return PluginStatus(entry, source, True)


def import_submodules(package: str, path: str | Path, skip: Iterable[str] = ("base",)) -> None:
    """Import, once per process, every module of `package` (whose folder is `path`) not named in `skip`.

    For packages where each module registers something when imported (one file per task): a new one is one
    new file, found without a list to keep up to date.
    """
    if package in _imported_packages:
        return
    skipped = set(skip)
    for found in pkgutil.iter_modules([str(path)]):
        if found.name not in skipped:
            importlib.import_module(f"{package}.{found.name}")
    _imported_packages.add(package)
