"""`memory=` is a cap on the whole run: the resident memory of its process tree never exceeds it.

Each case runs the 3-op chain of the core benchmark (uniform filter, Sobel magnitude, Gaussian
blur: halo 11) from a generated 4096 x 4096 float32 GeoTIFF to a GeoTIFF, in a child Python
process, while this test samples the resident set size of the child and every process under it
(worker processes, multiprocessing's resource tracker) every 20 ms, and asserts that the peak
stays within the budget. A budget that cannot hold the run (worker processes, each with its own
interpreter and libraries, in 256 MiB) must be refused before anything is written, saying how
much the run needs. This asserts on memory, never on time.
"""

import json
import os
import subprocess
import sys
import time

import numpy as np
import psutil
import pytest
import rasterio
from dask.utils import parse_bytes
from rasterio.windows import Window

SIDE = 4096

CHILD = """
import json, sys
from scipy import ndimage
import tilewise as tw

@tw.op(margin=2)
def smooth(a):
    return ndimage.uniform_filter(a, size=5)

@tw.op(margin=1)
def gradient(a):
    return ndimage.sobel(a, 0) ** 2 + ndimage.sobel(a, 1) ** 2

@tw.op(margin=8)
def blur(a):
    return ndimage.gaussian_filter(a, sigma=2)

if __name__ == "__main__":  # worker processes import this file for its ops
    src, out, executor, memory = sys.argv[1:5]
    try:
        report = tw.save(blur(gradient(smooth(tw.open(src)))), out, executor=executor,
                         workers=2, memory=memory, progress=False)
        print(json.dumps({"tile": report.tile, "tiles": report.tiles}))
    except tw.BudgetError as exc:
        print(json.dumps({"refused": str(exc)}))
"""


@pytest.fixture(scope="module")
def dem(tmp_path_factory):
    """A 4096 x 4096 float32 GeoTIFF (64 MiB of pixels), tiled and compressed."""
    path = str(tmp_path_factory.mktemp("cap") / "dem.tif")
    profile = {"driver": "GTiff", "width": SIDE, "height": SIDE, "count": 1,
               "dtype": "float32", "tiled": True, "blockxsize": 512, "blockysize": 512,
               "compress": "deflate", "zlevel": 1}
    rng = np.random.default_rng(0)
    with rasterio.open(path, "w", **profile) as ds:
        for row in range(0, SIDE, 1024):
            ds.write(rng.normal(1000, 50, (1024, SIDE)).astype("float32"), 1,
                     window=Window(0, row, SIDE, 1024))
    return path


def run_sampled(script: str, args: list[str]) -> tuple[dict, int]:
    """Run a Python script in a child process; its last output line as JSON, and the peak
    resident memory of its process tree, sampled every 20 ms."""
    proc = subprocess.Popen([sys.executable, script, *args], stdout=subprocess.PIPE, text=True)
    parent = psutil.Process(proc.pid)
    peak = 0
    while proc.poll() is None:
        try:
            total = parent.memory_info().rss
            for child in parent.children(recursive=True):
                try:
                    total += child.memory_info().rss
                except psutil.Error:
                    continue
            peak = max(peak, total)
        except psutil.Error:
            pass
        time.sleep(0.02)
    out = proc.stdout.read() if proc.stdout else ""
    assert proc.returncode == 0, f"the child failed with exit code {proc.returncode}"
    return json.loads(out.strip().splitlines()[-1]), peak


@pytest.mark.parametrize("executor", ["threads", "processes"])
@pytest.mark.parametrize("memory", ["256MiB", "512MiB", "1GiB"])
def test_peak_resident_memory_of_the_process_tree_stays_within_the_budget(
        dem, tmp_path, executor, memory):
    script = tmp_path.parent / f"{tmp_path.name}_chain.py"
    script.write_text(CHILD)
    out = str(tmp_path / "out.tif")
    result, peak = run_sampled(str(script), [dem, out, executor, memory])
    budget = parse_bytes(memory)
    assert peak <= budget, f"peak {peak / 2**20:.0f} MiB over the budget of {memory}"
    if "refused" in result:
        # Only worker processes, each an interpreter with NumPy, SciPy, GDAL and Zarr, may
        # not fit; the refusal names the budget and what the run needs, and writes nothing.
        assert (executor, memory) == ("processes", "256MiB")
        assert "more than the memory budget 256.00 MiB" in result["refused"]
        assert "for 2 worker processes" in result["refused"]
        assert os.listdir(tmp_path) == []
    else:
        assert result["tiles"] > 1 and os.path.exists(out)
