"""The README's examples run as written (on the shared SRTM DEM)."""

import os
import re

from conftest import data_path

README = os.path.join(os.path.dirname(__file__), "..", "README.md")


def test_readme_example_runs(tmp_path, monkeypatch):
    dem = data_path("dem", "srtm90.tif")
    with open(README) as f:
        text = f.read()
    example = re.search(r"## Example\n\n```python\n(.*?)```", text, re.S).group(1)
    two_pass = re.search(r"### Reductions and two-pass pipelines\n```python\n(.*?)```",
                         text, re.S).group(1)
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    for code in (example, two_pass):
        code = code.replace("../shared/data/dem/srtm90.tif", dem)
        exec(compile(code, "README.md", "exec"), namespace)
    assert sorted(f for f in os.listdir(tmp_path) if not f.endswith(".journal")) == \
        ["gx.zarr", "gy.tif", "stretched.tif"]
    assert namespace["spectrum"].shape == (53,)


def test_readme_builtin_ops_example_runs(tmp_path, monkeypatch):
    dem = data_path("dem", "srtm90.tif")
    with open(README) as f:
        text = f.read()
    code = re.search(r"### Built-in ops\n```python\n(.*?)```", text, re.S).group(1)
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"tw": __import__("tilewise")}
    exec(compile(code.replace("../shared/data/dem/srtm90.tif", dem), "README.md", "exec"),
         namespace)
    assert sorted(os.listdir(tmp_path)) == ["dem8.tif", "dem8.tif.journal", "relief.tif",
                                            "relief.tif.journal"]


def test_readme_pipeline_file_is_valid(tmp_path, monkeypatch):
    from tilewise import spec

    dem = data_path("dem", "srtm90.tif")
    with open(README) as f:
        text = f.read()
    pipeline = re.search(r"```yaml\n(.*?)```", text, re.S).group(1)
    (tmp_path / "mypackage").mkdir()
    (tmp_path / "mypackage" / "__init__.py").write_text("")
    (tmp_path / "mypackage" / "filters.py").write_text(
        "def local_range(a, *, size):\n    return a\n")
    (tmp_path / "p.yaml").write_text(pipeline.replace("../shared/data/dem/srtm90.tif", dem))
    monkeypatch.chdir(tmp_path)
    loaded = spec.load(tmp_path / "p.yaml")
    assert [o.name for o in loaded.outputs] == ["shade", "bumps"]
    assert loaded.options == {"memory": "1GiB", "workers": 2}
