"""The installable project: its wheel holds the app as laid out here (app.py beside models/, viz/,
pages/), and `attention-explorer` starts it with the project's Streamlit settings from any folder."""
import shutil
import subprocess
import sys
import tomllib
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from streamlit.web import cli

from pages.__main__ import SETTINGS, streamlit_args
from tests.helpers import ROOT, streamlit_server

PROJECT_SETTINGS = ROOT / ".streamlit" / "config.toml"
NOT_BUILT_FROM = {".git", ".venv", "data", "artifacts", "build", "__pycache__", ".pytest_cache"}


def parsed(args: list[str]) -> dict:
    """`streamlit run`'s arguments as Streamlit's own command line parses them."""
    assert args[0] == "run"
    return cli.main_run.make_context("run", args[1:]).params


def test_the_command_runs_app_py_with_every_project_setting():
    params = parsed(streamlit_args([]))
    assert Path(params["target"]) == ROOT / "app.py"
    settings = tomllib.loads(PROJECT_SETTINGS.read_text())
    for section, options in settings.items():
        for name, value in options.items():
            assert params[f"{section}_{name}"] == value, f"{section}.{name}"


def test_options_given_to_the_command_win_over_the_settings():
    params = parsed(streamlit_args(["--server.port", "8765", "--server.headless=false"]))
    assert params["server_port"] == 8765 and params["server_headless"] is False  # the settings say true


def test_the_command_reads_the_projects_settings_file_itself():
    assert SETTINGS.resolve() == PROJECT_SETTINGS.resolve()  # a link, so the two never drift apart


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The project's wheel, built offline from a copy of the project (a build writes beside its sources)."""
    folder = tmp_path_factory.mktemp("wheel")
    source = folder / "project"
    shutil.copytree(ROOT, source, symlinks=True,
                    ignore=lambda at, names: [n for n in names if n in NOT_BUILT_FROM or n.endswith(".egg-info")])
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", str(source),
                    "-w", str(folder)], check=True, capture_output=True, timeout=300)
    return next(folder.glob("attention_explorer-*.whl"))


def test_the_wheel_holds_the_app_its_packages_and_its_settings(wheel):
    sources = {path.relative_to(ROOT).as_posix() for package in ("models", "viz", "pages")
               for path in (ROOT / package).rglob("*.py")}
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        assert {"app.py", *sources} <= names
        assert not {name for name in names if name.startswith(("tests/", "benchmarks/"))}
        assert archive.read("pages/streamlit_config.toml") == PROJECT_SETTINGS.read_bytes()
        info = next(name.split("/")[0] for name in names if name.endswith(".dist-info/METADATA"))
        assert "attention-explorer = pages.__main__:main" in archive.read(f"{info}/entry_points.txt").decode()
        metadata = Parser().parsestr(archive.read(f"{info}/METADATA").decode())
    required = [Requirement(line.split(" #")[0]) for line in (ROOT / "requirements.txt").read_text().splitlines()
                if line.strip() and not line.startswith("#")]
    assert [Requirement(r) for r in metadata.get_all("Requires-Dist")] == required  # comments dropped, none lost


def test_the_installed_command_starts_the_server_from_another_folder(wheel, tmp_path, monkeypatch):
    installed = tmp_path / "site-packages"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-index", "--target",
                    str(installed), str(wheel)], check=True, capture_output=True, timeout=300)
    monkeypatch.setenv("PYTHONPATH", str(installed))  # the installed copy, not this folder, on the path
    command = (str(installed / "bin" / "attention-explorer"),)
    with streamlit_server(tmp_path, command=command, cwd=tmp_path):
        pass  # it answered its health check: the installed copy found app.py, its settings and Streamlit


def test_ci_runs_the_readmes_test_command():
    command = (ROOT / ".ci" / "run").read_text().strip().splitlines()[-1]
    assert f"```sh\n{command}\n```" in (ROOT / "README.md").read_text()
