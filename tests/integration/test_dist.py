"""The wheels `make dist` builds install in a fresh virtual environment (with the package
index for third-party dependencies only), and a plugin made by `stream new-plugin` works
there: its printed next steps, and its own wheel with its own tests."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from ..conftest import ROOT

pytestmark = pytest.mark.integration


def run(command: list[str] | str, cwd: Path, env: dict[str, str], timeout: float = 600) -> str:
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout,
                          shell=isinstance(command, str))
    assert done.returncode == 0, f"{command}: exit {done.returncode}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout


def test_the_wheels_install_in_a_fresh_venv_and_a_new_plugin_passes_its_tests(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STREAM_", "VIRTUAL_ENV", "PYTHONPATH"))}
    listed = run(["make", "--no-print-directory", "dist", f"DIST={dist}"], ROOT, env)
    wheels = {p.name.split("-")[0]: p for p in dist.glob("*.whl")}
    assert set(wheels) == {"stream_news", "stream_clean", "stream_ner", "stream_dedup", "stream_alerts",
                           "stream_feeds", "stream_stories"}, listed

    venv = tmp_path / "venv"
    run([sys.executable, "-m", "venv", str(venv)], tmp_path, env)
    bin_dir = venv / "bin"
    env["PATH"] = f"{bin_dir}{os.pathsep}{env['PATH']}"
    env["VIRTUAL_ENV"] = str(venv)
    pip = [str(bin_dir / "pip"), "install", "--quiet", "-c", str(ROOT / "constraints.txt")]
    run([*pip, str(wheels["stream_news"]), str(wheels["stream_clean"])], tmp_path, env)
    names = run([str(bin_dir / "pip"), "list", "--format=freeze"], tmp_path, env)
    assert "stream-news==" in names and not re.search(r"^stream==", names, re.M)

    out = run([str(bin_dir / "stream"), "new-plugin", "shout"], tmp_path, env)
    [steps] = re.findall(r"^next: (.+)$", out, re.M)
    # The printed next steps, as a user pastes them (pip install -e '.[test]', stream plugins, pytest).
    followed = run(steps, tmp_path, env)
    assert re.search(r"shout\s+0\.1\.0\s+450\s+shout \(stream-shout 0\.1\.0\)", followed), followed
    assert re.search(r"\d+ passed", followed), followed

    # The plugin as a wheel (what its users install), and its tests against that install.
    run([str(bin_dir / "pip"), "uninstall", "--quiet", "--yes", "stream-shout"], tmp_path, env)
    run([str(bin_dir / "pip"), "wheel", "--quiet", "--no-deps", "--wheel-dir", str(dist), str(tmp_path / "shout")],
        tmp_path, env)
    [plugin_wheel] = dist.glob("stream_shout-*.whl")
    run([*pip, str(plugin_wheel)], tmp_path, env)
    tests = tmp_path / "shout-tests"
    (tmp_path / "shout" / "tests").rename(tests)
    passed = run([str(bin_dir / "pytest"), "-q", "-p", "no:cacheprovider", str(tests)], tmp_path, env)
    assert re.search(r"\d+ passed", passed) and "failed" not in passed, passed
    shown = run([str(bin_dir / "python"), "-c", "import stream_shout; print(stream_shout.__file__)"], tmp_path, env)
    assert "site-packages" in shown

    # The production install of docs/operations.md: every built-in plugin's wheel with the
    # constraints (the spaCy models come with stream-ner, as packages), then the chain on a sample.
    run([*pip, *(str(w) for name, w in sorted(wheels.items()) if name not in ("stream_news", "stream_clean"))],
        tmp_path, env, timeout=900)
    listed = run([str(bin_dir / "stream"), "plugins"], tmp_path, env)
    for name in ("clean", "ner", "dedup", "stories", "alerts"):
        assert re.search(rf"^\s*\d+\s+{name}\s", listed, re.M), listed
    sample = ROOT / "examples" / "articles" / "000_e9839294c30e89ed.txt"
    out = run([str(bin_dir / "stream"), "process", str(sample)], tmp_path, env)
    [record] = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    assert record["entities"] and record["language"] == "en" and record["story"]["articles"] == 1, record
    assert {p["name"] for p in record["processing"]["plugins"]} >= {"clean", "ner", "dedup", "stories", "alerts"}
