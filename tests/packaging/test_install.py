"""A non-editable install still finds the bundled models and resources (they live outside the package)."""

import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_wheel_ships_models_and_resources_and_an_installed_copy_finds_them(tmp_path):
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(tmp_path),
            str(REPO),
        ],
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("mimviewer-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    bundled = sorted(
        p.name for p in (REPO / "models").iterdir() if p.suffix in {".safetensors", ".md", ".json"}
    )
    for name in bundled:
        assert f"mimviewer/bundled_models/{name}" in names, f"{name} missing from the wheel"
    assert "mimviewer/nets/base.py" in names and "mimviewer/ui/__init__.py" in names

    target = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--no-index",
            "--target",
            str(target),
            str(wheel),
        ],
        check=True,
        capture_output=True,
    )
    probe = (
        "import mimviewer, mimviewer.paths as p; "
        "print(mimviewer.__file__); print(sorted(x.name for x in p.bundled_models_dir().iterdir()))"
    )
    out = subprocess.run(
        [sys.executable, "-I", "-c", f"import sys; sys.path.insert(0, {str(target)!r}); {probe}"],
        check=True,
        capture_output=True,
        text=True,
        cwd=tmp_path,
    ).stdout.splitlines()
    assert out[0].startswith(str(target)), "imported the checkout, not the installed copy"
    for name in bundled:
        assert name in out[1]
