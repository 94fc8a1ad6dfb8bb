"""The README's examples run as written: each Python snippet alone, in a fresh folder, in its
own interpreter, with nothing but what it imports (the data come from `tilewise.datasets`)."""

import os
import re
import shutil
import subprocess
import sys

import pytest
from conftest import DATA, data_path

README = os.path.join(os.path.dirname(__file__), "..", "README.md")


def readme():
    with open(README) as f:
        return f.read()


def snippets():
    """(heading, code) of every ```python block, under the nearest heading above it."""
    text = readme()
    found = []
    for match in re.finditer(r"```python\n(.*?)```", text, re.S):
        heading = re.findall(r"^#+ (.+)$", text[:match.start()], re.M)[-1]
        found.append((heading, match.group(1)))
    return found


#: What each snippet leaves in its folder, journals aside; a new snippet must be added here.
WRITES = {
    "Built-in ops": ["dem8.tif", "relief.tif"],
    "Example": ["gx.zarr", "gy.tif"],
    "OME-Zarr output and microscopy ops": ["cells.ome.zarr"],
    "Reductions and two-pass pipelines": ["stretched.tif"],
    "On a dask cluster, in object stores, as dask and xarray arrays": ["relief.zarr"],
}


def test_every_snippet_is_known():
    assert [h for h, _ in snippets()] == list(WRITES)


def run(code, folder, env):
    """Run `code` as a script in `folder` with exactly `env` for tilewise's variables."""
    script = folder / "snippet.py"
    script.write_text(code)
    environ = {k: v for k, v in os.environ.items() if not k.startswith("TILEWISE_")}
    environ |= env
    done = subprocess.run([sys.executable, "snippet.py"], cwd=folder, env=environ,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    script.unlink()
    return done


def printed(code):
    """The outputs a snippet's comments promise: `print(...)  # shown` lines."""
    return [line.split("#", 1)[1].strip() for line in code.splitlines()
            if line.startswith("print(") and "#" in line]


@pytest.mark.parametrize("heading,code", snippets(), ids=[h for h, _ in snippets()])
def test_snippet_runs_with_the_shared_data(tmp_path, heading, code):
    """As CI runs it: `TILEWISE_DATA` points at the shared folder, and an empty cache proves
    nothing was fetched."""
    data_path("dem", "srtm90.tif")
    work = tmp_path / "work"
    work.mkdir()
    done = run(code, work, {"TILEWISE_DATA": os.path.abspath(DATA),
                            "TILEWISE_CACHE": str(tmp_path / "cache")})
    assert done.stdout.splitlines() == printed(code)
    assert not (tmp_path / "cache").exists() and "downloading" not in done.stderr
    assert sorted(f for f in os.listdir(work) if not f.endswith(".journal")) == WRITES[heading]


@pytest.mark.parametrize("heading,code", snippets(), ids=[h for h, _ in snippets()])
def test_snippet_runs_as_a_user_runs_it(tmp_path, heading, code):
    """As in a fresh clone: no `TILEWISE_DATA`, the DEM in the user's cache as the first run
    left it (the download itself is not tested here: CI has no network)."""
    (tmp_path / "cache").mkdir()
    shutil.copy(data_path("dem", "srtm90.tif"), tmp_path / "cache" / "srtm90.tif")
    work = tmp_path / "work"
    work.mkdir()
    done = run(code, work, {"TILEWISE_CACHE": str(tmp_path / "cache")})
    assert done.stdout.splitlines() == printed(code)
    assert "downloading" not in done.stderr
    assert sorted(f for f in os.listdir(work) if not f.endswith(".journal")) == WRITES[heading]


def test_readme_pipeline_file_is_valid(tmp_path, monkeypatch):
    from tilewise import spec

    dem = data_path("dem", "srtm90.tif")
    pipeline = re.search(r"```yaml\n(.*?)```", readme(), re.S).group(1)
    (tmp_path / "mypackage").mkdir()
    (tmp_path / "mypackage" / "__init__.py").write_text("")
    (tmp_path / "mypackage" / "filters.py").write_text(
        "def local_range(a, *, size):\n    return a\n")
    (tmp_path / "p.yaml").write_text(pipeline.replace("../shared/data/dem/srtm90.tif", dem))
    monkeypatch.chdir(tmp_path)
    loaded = spec.load(tmp_path / "p.yaml")
    assert [o.name for o in loaded.outputs] == ["shade", "bumps"]
    assert loaded.options == {"memory": "1GiB", "workers": 2}
