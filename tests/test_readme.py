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
    assert sorted(os.listdir(tmp_path)) == ["gx.zarr", "gy.tif", "stretched.tif"]
    assert namespace["spectrum"].shape == (53,)
