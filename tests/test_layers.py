"""The app layering is a contract: a wrong-way import fails `lint-imports`, as scripts/test runs it."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# The apps the contract names, read from it, so a new app needs one edit, not two.
APPS = tuple(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["root_packages"])


def lint_imports(tree: Path) -> subprocess.CompletedProcess[str]:
    executable = Path(sys.executable).with_name("lint-imports")
    return subprocess.run(
        [str(executable), "--no-cache"], cwd=tree, capture_output=True, text=True, timeout=120, env={"PYTHONPATH": "."}
    )


def copy_of_the_project(tmp_path: Path) -> Path:
    for app in APPS:
        shutil.copytree(ROOT / app, tmp_path / app, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def test_the_project_keeps_its_layers(tmp_path):
    result = lint_imports(copy_of_the_project(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 kept, 0 broken" in result.stdout


def test_a_wrong_way_import_breaks_the_contract(tmp_path):
    tree = copy_of_the_project(tmp_path)
    # generation sits below arena: it must not reach up into it.
    (tree / "generation" / "upward.py").write_text('"""A wrong-way import."""\n\nfrom arena import ranking  # noqa\n')
    result = lint_imports(tree)
    assert result.returncode != 0
    assert "BROKEN" in result.stdout
    assert "generation.upward -> arena.ranking" in result.stdout
