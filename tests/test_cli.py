"""The command line, driven as a user would: a subprocess, its output and exit code."""

import subprocess
import sys

import numpy as np
from conftest import data_path

import tilewise as tw


def tilewise(*args):
    return subprocess.run([sys.executable, "-m", "tilewise.cli", *map(str, args)],
                          capture_output=True, text=True)


def test_info_on_a_real_geotiff():
    done = tilewise("info", data_path("dem", "srtm90.tif"))
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "2465 x 4269  axes yx" in out and "int16" in out and "512 x 512" in out
    assert "EPSG:4326" in out and "overviews  1/2, 1/4, 1/8" in out


def test_info_on_zarr(tmp_path):
    tw.save(tw.open(np.zeros((3, 40, 50), "float32"), axes="zyx"), tmp_path / "a.zarr")
    done = tilewise("info", tmp_path / "a.zarr")
    assert done.returncode == 0, done.stderr
    assert "3 x 40 x 50  axes zyx" in done.stdout and "crs        none" in done.stdout


def test_bad_input_is_one_sentence_and_exit_2(tmp_path):
    done = tilewise("info", tmp_path / "missing.tif")
    assert done.returncode == 2
    assert done.stderr.strip() == f"tilewise: input {tmp_path / 'missing.tif'} does not exist"
    assert "Traceback" not in done.stderr


def test_bad_usage_exits_2():
    assert tilewise().returncode == 2
    assert tilewise("frobnicate").returncode == 2
