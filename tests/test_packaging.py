"""The wheel a user installs: built from the source tree as a release would be, it holds every file the
package reads at run time, carries the metadata a packager expects, and, installed with ``pip`` (not
editable) into a fresh virtual environment, runs ``interp-steer info``.

The build runs without isolation (no network, about a second), so it needs ``build`` (the dev extra)
and the build backend that pyproject.toml's ``[build-system]`` names in this environment; without
them the tests skip and say what to install. The whole module takes about 15 s on two cores.
"""

from __future__ import annotations

import email.parser
import importlib.metadata
import importlib.util
import json
import os
import re
import shutil
import site
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

import interp_steer

ROOT = Path(__file__).resolve().parents[1]

# What issue 31 §2 asks of the metadata. The license is the SPDX `License-Expression` (PEP 639),
# which replaces the "License ::" classifier (setuptools refuses both together).
CLASSIFIERS = {
    "Development Status :: 3 - Alpha",
    "Intended Audience :: Science/Research",
    "Operating System :: OS Independent",
    "Programming Language :: Python :: 3.10",
    "Programming Language :: Python :: 3.11",
    "Programming Language :: Python :: 3.12",
    "Topic :: Scientific/Engineering :: Artificial Intelligence",
    "Typing :: Typed",
}


def _source_files() -> list[str]:
    """The files a clean checkout of this working tree would hold: those git tracks, and new ones it
    does not ignore (so a file added but not yet committed is checked too)."""
    try:
        listed = subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=ROOT,
            capture_output=True,
            check=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError) as error:
        pytest.skip(f"the source tree's file list comes from git, which failed here: {error}")
    return sorted(name for name in listed.decode().split("\0") if name and (ROOT / name).is_file())


def _unmet_build_requirements() -> list[str]:
    """``build`` and the ``[build-system]`` requirements, those this environment does not satisfy."""
    if importlib.util.find_spec("build") is None:
        return ["build"]
    from build import check_dependency

    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10: `build` depends on tomli there
        import tomli as tomllib
    requires = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["build-system"][
        "requires"
    ]
    return [" <- ".join(unmet) for req in requires for unmet in check_dependency(req)]


@pytest.fixture(scope="module")
def source_files() -> list[str]:
    return _source_files()


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory, source_files: list[str]) -> Path:
    """The wheel, built from a copy of the source tree (a build writes build/ and *.egg-info beside
    its sources, which must not land in a working tree others are using)."""
    unmet = _unmet_build_requirements()
    if unmet:
        pytest.skip(
            f"building the wheel needs {', '.join(unmet)} in this environment: "
            f"pip install -e '.[dev]' (or pip install {' '.join(repr(u) for u in unmet)})"
        )
    work = tmp_path_factory.mktemp("wheel")
    source = work / "src"
    for name in source_files:
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, source / name)
    built = subprocess.run(
        [
            sys.executable,
            "-m",
            "build",
            "--wheel",
            "--no-isolation",
            "--outdir",
            str(work / "dist"),
            str(source),
        ],
        capture_output=True,
        text=True,
    )
    assert built.returncode == 0, (
        f"the wheel did not build:\n{built.stdout[-3000:]}\n{built.stderr[-3000:]}"
    )
    (path,) = (work / "dist").glob("*.whl")
    return path


def _metadata(wheel: Path) -> email.message.Message:
    with zipfile.ZipFile(wheel) as archive:
        (name,) = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        return email.parser.Parser().parsestr(archive.read(name).decode("utf-8"))


def test_wheel_holds_every_file_of_the_package(wheel: Path, source_files: list[str]) -> None:
    """Every file under interp_steer/ (schemas, built-in datasets, their cards, py.typed, modules),
    derived from the source tree rather than listed by hand, so a new data file that package-data
    misses fails here; and nothing but the package and its metadata."""
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
    wanted = {name for name in source_files if name.startswith("interp_steer/")}
    data = {name for name in wanted if not name.endswith(".py")}
    assert {"interp_steer/py.typed", "interp_steer/datasets/CARDS.md"} <= data
    assert sum(name.endswith("schema.json") for name in data) == 4, sorted(data)
    assert sorted(wanted - names) == []
    assert {name.split("/")[0] for name in names} == {
        "interp_steer",
        wheel.name.split("-")[0] + "-" + interp_steer.__version__ + ".dist-info",
    }
    assert not [name for name in names if "__pycache__" in name or name.endswith(".pyc")]


def test_wheel_metadata(wheel: Path) -> None:
    meta = _metadata(wheel)
    assert meta["Name"] == "interp_steer"
    assert meta["Version"] == interp_steer.__version__
    assert meta["License-Expression"] == "MIT"
    assert meta.get_all("License-File") == ["LICENSE"]
    with zipfile.ZipFile(wheel) as archive:
        license_text = archive.read(
            f"interp_steer-{interp_steer.__version__}.dist-info/licenses/LICENSE"
        )
    assert license_text == (ROOT / "LICENSE").read_bytes()
    assert CLASSIFIERS <= set(meta.get_all("Classifier"))
    assert not [c for c in meta.get_all("Classifier") if c.startswith("License ::")]
    assert meta["Requires-Python"] == ">=3.10"
    urls = dict(entry.split(", ", 1) for entry in meta.get_all("Project-URL"))
    assert all(
        re.fullmatch(r"https://arxiv\.org/abs/\d{4}\.\d{5}", url) for url in urls.values()
    ), urls
    assert "https://arxiv.org/abs/2505.03189" in urls.values()
    assert meta.get_payload().lstrip().startswith("#"), "the long description is the README"


def test_one_version_everywhere(capsys: pytest.CaptureFixture[str]) -> None:
    """`__version__` is the one written version: the installed distribution's metadata (built from
    it by setuptools), the CLI's --version and every result file's `library_version` agree with it.
    An editable install built before a version bump fails here: reinstall it (pip install -e .)."""
    from interp_steer.cli import main
    from interp_steer.studies._common import result_header
    from interp_steer.studies.collision.config import CollisionConfig
    from interp_steer.units import run_key

    version = interp_steer.__version__
    assert importlib.metadata.version("interp_steer") == version
    with pytest.raises(SystemExit):
        main(["--version"])
    assert capsys.readouterr().out.strip() == f"interp-steer {version}"
    assert result_header(1, CollisionConfig.quick())["library_version"] == version
    assert run_key(("tiny-random", "float32"), {}, {})["library_version"] == version
    # The other writers (vectors, fields, study results) take the same import; keep it that way.
    for path in sorted((ROOT / "interp_steer").rglob("*.py")):
        for value in re.findall(
            r"[\"']library_version[\"']\s*:\s*([\w.]+)", path.read_text(encoding="utf-8")
        ):
            assert value == "__version__", (
                f"{path.relative_to(ROOT)} writes library_version = {value}"
            )


def _venv_paths(venv: Path) -> tuple[Path, Path]:
    """The new environment's site-packages and scripts folders (same interpreter, same scheme)."""
    where = {"base": str(venv), "platbase": str(venv)}
    return Path(sysconfig.get_path("purelib", vars=where)), Path(
        sysconfig.get_path("scripts", vars=where)
    )


def test_installed_wheel_runs(wheel: Path, tmp_path: Path) -> None:
    """`pip install` of the wheel (not editable) into a fresh venv, then its own `interp-steer`, run
    outside the repository: the package, its data and its version come from the installed copy.

    The dependencies (torch and the rest, gigabytes) are not installed again: a .pth file in the new
    venv names this environment's site-packages. A plain path in a .pth file is only appended to
    sys.path; the .pth files inside that folder (the editable install's finder among them) are not
    run, so this checkout's interp_steer is not importable there, only its dependencies."""
    pip_version = tuple(int(p) for p in re.findall(r"\d+", importlib.metadata.version("pip"))[:2])
    if pip_version < (22, 3):
        pytest.skip(
            f"pip {pip_version} cannot install into another environment (--python needs pip>=22.3)"
        )
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    purelib, scripts = _venv_paths(venv)
    python = scripts / Path(sys.executable).name
    # Install before the .pth exists, so pip sees an empty environment (with the dependencies in view
    # it would find this checkout's editable interp_steer of the same version and do nothing).
    installed = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(python),
            "install",
            "--no-deps",
            "--no-compile",
            "--no-index",
            "--disable-pip-version-check",
            str(wheel),
        ],
        capture_output=True,
        text=True,
    )
    assert installed.returncode == 0, installed.stdout + installed.stderr
    ours = [
        p
        for p in {
            *site.getsitepackages(),
            sysconfig.get_path("purelib"),
            sysconfig.get_path("platlib"),
        }
        if Path(p).is_dir()
    ]
    (purelib / "_dependencies_from_test_env.pth").write_text(
        "\n".join(sorted(ours)) + "\n", encoding="utf-8"
    )

    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env.update(HF_HUB_OFFLINE="1", PYTHONNOUSERSITE="1")
    run = {"cwd": tmp_path, "env": env, "capture_output": True, "text": True, "timeout": 300}

    command = scripts / "interp-steer"
    info = subprocess.run([str(command), "info", "--model", "tiny-random", "--json"], **run)
    assert info.returncode == 0, info.stderr
    facts = json.loads(info.stdout)
    assert (facts["name"], facts["n_layers"], facts["d_model"]) == ("tiny-random:0", 4, 64)
    shown = subprocess.run([str(command), "--version"], **run)
    assert shown.stdout.strip() == f"interp-steer {interp_steer.__version__}", (
        shown.stdout + shown.stderr
    )

    probe = """
import importlib, importlib.metadata, json, interp_steer
from interp_steer.data import builtin_names, load_builtin
schemas = {s: importlib.import_module(f"interp_steer.studies.{s}.result").schema()["$schema"]
           for s in ("collision", "patching", "svf", "robustness")}
print(json.dumps({"file": interp_steer.__file__, "version": interp_steer.__version__,
                  "metadata": importlib.metadata.version("interp_steer"),
                  "builtins": {name: len(load_builtin(name)) for name in builtin_names()},
                  "schemas": schemas}))
"""
    seen = subprocess.run([str(python), "-c", probe], **run)
    assert seen.returncode == 0, seen.stderr
    facts = json.loads(seen.stdout)
    assert Path(facts["file"]).resolve().is_relative_to(purelib.resolve()), facts["file"]
    assert facts["version"] == facts["metadata"] == interp_steer.__version__
    assert facts["builtins"] and all(n > 0 for n in facts["builtins"].values()), facts["builtins"]
    assert all("json-schema.org" in url for url in facts["schemas"].values()), facts["schemas"]
