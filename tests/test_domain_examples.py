"""The microscopy and astronomy examples run as a user runs them, on the real files."""

import os
import subprocess
import sys

import numpy as np
import pytest
import zarr
from conftest import data_path
from ome_zarr_models.v05.image import Image as ImageV05

import tilewise as tw

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(script, *args):
    done = subprocess.run([sys.executable, os.path.join(ROOT, "examples", script),
                           *map(str, args)], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": os.path.join(ROOT, "src")})
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_czi_denoise_example_writes_a_valid_ome_zarr_pyramid(tmp_path):
    czi = data_path("microscopy", "CD_s_1_t_3_c_2_z_5.czi")
    out = tmp_path / "denoised.ome.zarr"
    printed = run("czi_denoise.py", czi, out)
    assert "level 2: (3, 2, 5, 43, 60) float32, 0.3623 micrometre pixels" in printed
    assert "channels: LED555, LED470" in printed
    ImageV05.from_zarr(zarr.open_group(out, mode="r"))
    levels = [tw.open(out, level=k).compute() for k in range(3)]
    assert np.nanmax(np.abs(levels[1][..., :2, :2].mean(axis=(-2, -1)) - levels[2][..., 0, 0])) \
        < 1e-6
    assert "0 tiles" in run("czi_denoise.py", czi, out)  # complete: a second run does nothing


def test_fits_sums_example_keeps_the_wcs(tmp_path):
    image = data_path("astronomy", "j8bt06nyq_flt.fits")
    cube = data_path("astronomy", "l1448_13co.fits")
    printed = run("fits_sums.py", image, cube, tmp_path)
    assert "4 x 4 sums (256, 256) float64" in printed
    assert "summed along 'z' to (1, 105, 105)" in printed
    moment0 = tw.open(tmp_path / "l1448_moment0.zarr")
    sky = tw.open(cube).meta["wcs"]
    assert moment0.meta["wcs"].wcs.cdelt[2] == pytest.approx(sky.wcs.cdelt[2] * 53, rel=1e-12)
    assert moment0.meta["wcs"].wcs.crval[:2] == pytest.approx(sky.wcs.crval[:2], rel=1e-12)
