"""`stream new-plugin`: a new author's first plugin installs, is listed, runs, and its test passes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from stream.cli import main


def test_a_new_plugin_installs_runs_and_passes_its_own_tests(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["new-plugin", "wordcount", "--directory", str(tmp_path)])
    assert result.exit_code == 0, result.output
    root = tmp_path / "wordcount"
    assert (root / "pyproject.toml").is_file() and (root / "stream_wordcount" / "__init__.py").is_file()
    pip = [sys.executable, "-m", "pip"]
    subprocess.run([*pip, "install", "-q", "--no-deps", "-e", str(root)], check=True)
    try:
        env = {k: v for k, v in os.environ.items() if k != "STREAM_PLUGINS"}
        listed = subprocess.run([sys.executable, "-m", "stream", "plugins"], env=env, capture_output=True,
                                text=True, check=True)
        assert "wordcount (stream-wordcount 0.1.0)" in listed.stdout
        article = tmp_path / "a.txt"
        article.write_text("Troops moved toward the border.\n")
        out = subprocess.run([sys.executable, "-m", "stream", "process", str(article)], env=env,
                             capture_output=True, text=True, check=True)
        assert '"wordcount":{"words":5' in out.stdout
        tests = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(root / "tests")],
                               env=env, capture_output=True, text=True, cwd=root)
        assert tests.returncode == 0, tests.stdout + tests.stderr
        assert "passed" in tests.stdout
    finally:
        subprocess.run([*pip, "uninstall", "-q", "-y", "stream-wordcount"], check=True)


def test_a_bad_name_or_an_existing_directory_is_refused(tmp_path: Path) -> None:
    runner = CliRunner()
    bad = runner.invoke(main, ["new-plugin", "Bad-Name", "--directory", str(tmp_path)])
    assert bad.exit_code == 2 and "is not a plugin name" in bad.output
    (tmp_path / "taken").mkdir()
    taken = runner.invoke(main, ["new-plugin", "taken", "--directory", str(tmp_path)])
    assert taken.exit_code == 2 and "already exists" in taken.output


def test_a_new_source_installs_is_found_and_passes_its_own_tests(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["new-plugin", "jsonpoll", "--source", "--directory", str(tmp_path)])
    assert result.exit_code == 0, result.output
    root = tmp_path / "jsonpoll"
    pip = [sys.executable, "-m", "pip"]
    subprocess.run([*pip, "install", "-q", "--no-deps", "-e", str(root)], check=True)
    try:
        env = {k: v for k, v in os.environ.items() if k != "STREAM_PLUGINS"}
        feeds = tmp_path / "feeds.toml"
        feeds.write_text('[[jsonpoll]]\nurl = "ftp://nowhere"\n')
        checked = subprocess.run([sys.executable, "-m", "stream", "ingest", str(feeds), "--once"], env=env,
                                 capture_output=True, text=True)
        # The source's own check stops the program at the line, before any Kafka client.
        assert checked.returncode == 78 and f"{feeds}:2: [[jsonpoll]] url: give the http(s)" in checked.stderr
        tests = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(root / "tests")],
                               env=env, capture_output=True, text=True, cwd=root)
        assert tests.returncode == 0, tests.stdout + tests.stderr
        assert "3 passed" in tests.stdout
    finally:
        subprocess.run([*pip, "uninstall", "-q", "-y", "stream-jsonpoll"], check=True)
