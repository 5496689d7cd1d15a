"""The distribution installs one namespace, ``imageforge.*``, and ships every package and data file.

The folders sit at the repository's top level (the design card fixes them) and are mapped
under ``imageforge.`` by setuptools' ``package-dir``; a package folder missing from the
explicit ``packages`` list would silently be left out of the wheel, so this checks the list
against the tree, and (integration tier) builds the wheel and looks inside.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LAYERS = ("agents", "api", "graph", "scoring", "tools", "traces")


def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def _package_folders() -> set[str]:
    found = set()
    for layer in LAYERS:
        for init in (ROOT / layer).rglob("__init__.py"):
            relative = init.parent.relative_to(ROOT)
            found.add("imageforge." + ".".join(relative.parts))
    return found


def test_every_package_folder_is_listed_for_the_wheel() -> None:
    listed = set(_pyproject()["tool"]["setuptools"]["packages"])
    assert listed == _package_folders()


def test_each_layer_maps_to_its_folder() -> None:
    mapping = _pyproject()["tool"]["setuptools"]["package-dir"]
    assert mapping == {f"imageforge.{layer}": layer for layer in LAYERS}


@pytest.mark.integration
def test_the_wheel_installs_only_the_imageforge_namespace(tmp_path: Path) -> None:
    if shutil.which("git") is None:
        pytest.skip("needs git to copy the tracked tree")
    source = tmp_path / "src"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(source)], check=True)  # committed files only
    # the working tree's uncommitted files count too: copy them over the clone
    for path in subprocess.run(
        ["git", "ls-files", "--modified", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split():
        target = source / path
        if (ROOT / path).is_file():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / path, target)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            str(source),
            "-w",
            str(tmp_path),
        ],
        check=True,
    )
    (wheel,) = tmp_path.glob("imageforge-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    dist_info = "-".join(wheel.name.split("-")[:2]) + ".dist-info"
    assert {name.split("/")[0] for name in names} == {"imageforge", dist_info}
    assert "imageforge/agents/prompts/planner.txt" in names
    assert any(name.startswith("imageforge/api/") and name.endswith(".html") for name in names)
    assert not any(name.startswith("imageforge/tests/") for name in names)
