"""The two plugins of docs/extending.md, run straight from the document (so it cannot go stale).

Each runs in a fresh Python process with SALIENCY_PLUGINS naming the saved files, as an operator would
configure it, so the plugins' registrations do not leak into the other tests.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "extending.md"


def examples() -> dict[str, str]:
    """{file name: code} of every fenced python block whose first line is `# example: <name>`."""
    found = {}
    for block in re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), flags=re.S):
        first = block.splitlines()[0]
        if first.startswith("# example: "):
            found[first.removeprefix("# example: ").strip()] = block
    return found


@pytest.fixture
def plugins(tmp_path: Path) -> dict[str, str]:
    """The examples saved as files; the environment that names them in SALIENCY_PLUGINS."""
    found = examples()
    assert {"my_method.py", "my_model.py"} <= set(found), sorted(found)
    paths = []
    for name in ("my_method.py", "my_model.py"):
        path = tmp_path / name
        path.write_text(found[name], encoding="utf-8")
        paths.append(str(path))
    env = dict(os.environ, SALIENCY_PLUGINS=",".join(paths), SALIENCY_CONFIG=str(tmp_path / "none.toml"))
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    return env


def _run(code: str, env: dict[str, str], timeout: int = 240, args: tuple[str, ...] = ()) -> str:
    done = subprocess.run(
        [sys.executable, *(args or ("-c", textwrap.dedent(code)))],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


LIBRARY_CHECK = """
import torch
import saliency_core as sc

# The method: listed, with its lesson, and computing what it says on the demo model.
info = next(m for m in sc.list_methods() if m.id == "gradient_max")
assert info.family == "gradient" and info.lesson is not None and "saliency" in info.lesson.computes
m = sc.load_model("shapes_demo")
x = m.preprocess(sc.load_image("assets/samples/scene_00.png"))
grad = sc.attribute(m, x, "gradient", 0)
mine = sc.attribute(m, x, "gradient_max", 0)
assert mine.forward_passes == 0 and mine.backward_passes == 0, "the input gradient is a shared need"
assert torch.allclose(mine.map, grad.raw.abs().amax(dim=0))
assert sc.estimate(m, "gradient_max").forward_passes == 1

# The model: listed with its class names, and Grad-CAM equal to the definition computed by hand.
listed = next(i for i in sc.list_models() if i.id == "tiny_net")
assert listed.task == "classification" and listed.num_classes == 3 and listed.weights_available
t = sc.load_model("tiny_net")
assert t.layers() == ["features.4", "features.1"] and t.categories == ["apple", "banana", "cherry"]
x = t.preprocess(sc.load_image("assets/samples/scene_00.png"))
assert tuple(x.shape) == (1, 3, 64, 64)
a = sc.attribute(t, x, "gradcam", 1)
acts = t.module.features(x).detach().requires_grad_(True)
score = t.module.head(t.module.pool(acts).flatten(1))[0, 1]
(g,) = torch.autograd.grad(score, [acts])
expected = (g[0].mean(dim=(1, 2))[:, None, None] * acts[0]).sum(0).detach()
assert a.raw.shape == (32, 32) and a.map.shape == (64, 64)
assert torch.allclose(a.raw, expected, atol=1e-5), (a.raw - expected).abs().max()
assert sc.attribute(t, x, "cam", 1).raw.shape == (32, 32)
print("library ok")
"""


def test_plugins_from_the_doc_work_through_the_library(plugins: dict[str, str]) -> None:
    assert "library ok" in _run(LIBRARY_CHECK, plugins)


def test_plugin_method_is_listed_by_the_command_line(plugins: dict[str, str]) -> None:
    out = _run("", plugins, args=("-m", "saliency_core", "methods"))
    assert re.search(r"^gradient_max\s", out, flags=re.M), out
    out = _run("", plugins, args=("-m", "saliency_core", "models"))
    assert re.search(r"^tiny_net\s+classification", out, flags=re.M), out


APP_CHECK = """
from streamlit.testing.v1 import AppTest
from ui import state

def texts(at):
    return "\\n".join(str(e.value) for kind in ("markdown", "caption") for e in getattr(at, kind))

# Learn explains the plugin's method from its lesson.
at = AppTest.from_file("app.py", default_timeout=120)
at.run()
at.switch_page("pages/3_Learn.py").run()
at.selectbox(key=state.LEARN_METHOD).set_value("gradient_max").run()
assert not at.exception, [e.value for e in at.exception]
assert "largest magnitude of the score's gradient" in texts(at)
assert at.latex and "max_c" in at.latex[0].value

# The sidebar offers the plugin's model, and Grad-CAM (Explore's default) runs on it.
at = AppTest.from_file("app.py", default_timeout=120)
at.run()
picker = at.selectbox(key=state.MODEL)
assert "tiny_net" in picker.options or "TinyNet (plugin example, random init)" in picker.options
picker.set_value("tiny_net").run()
assert not at.exception, [e.value for e in at.exception]
assert at.selectbox(key=state.METHOD).value == "gradcam"
found = [r for _, r in at.session_state[state.RESULTS].matching(()) if r.method == "gradcam"]
assert found and found[-1].map.shape == (64, 64), found
assert "apple" in texts(at) or any("apple" in str(o) for o in at.selectbox(key=state.TARGET).options)
# Settings lists both plugins as loaded.
at.switch_page("pages/5_Settings.py").run()
tables = [d.value for d in at.dataframe if "Plugin" in d.value.columns]
assert tables and list(tables[0]["Status"]) == ["loaded", "loaded"], tables
print("app ok")
"""


def test_plugins_from_the_doc_appear_in_the_app(plugins: dict[str, str]) -> None:
    assert "app ok" in _run(APP_CHECK, plugins, timeout=400)
