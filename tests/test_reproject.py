"""Reprojection tile by tile: `reproject` (celestial) bit for bit, GDAL's warper within the
error of its approximate transformer; each tile reads only its footprint."""

import math
import os

import numpy as np
import pytest
import rasterio
from affine import Affine
from conftest import data_path
from rasterio.warp import Resampling, calculate_default_transform
from scipy import ndimage

import tilewise as tw
from tilewise import library as ops
from tilewise.errors import ParameterError
from tilewise.pipeline import Pipeline
from tilewise.plan import read_pixels
from tilewise.regions import TileGrid

astropy_wcs = pytest.importorskip("astropy.wcs")
rp = pytest.importorskip("reproject")
fits = pytest.importorskip("astropy.io.fits")


def hst():
    """The HST SCI image (1024 x 1024 float32, native byte order) and its TAN WCS."""
    with fits.open(data_path("astronomy", "j8bt06nyq_flt.fits")) as hdus:
        return hdus["SCI"].data.astype("float32"), astropy_wcs.WCS(hdus["SCI"].header)


def turned(wcs, degrees, crpix, scale=1.0):
    """`wcs` rotated by `degrees` about its reference point, pixels `scale` times as large,
    the reference point at output pixel `crpix` (FITS, 1-based)."""
    out = wcs.deepcopy()
    t = math.radians(degrees)
    out.wcs.cd = scale * out.wcs.cd @ np.array([[math.cos(t), -math.sin(t)],
                                                [math.sin(t), math.cos(t)]])
    out.wcs.crpix = crpix
    return out


def with_wcs(a, wcs):
    return tw.map(np.asarray, tw.open(a), meta={"wcs": wcs})


FUNCTIONS = {"interp": rp.reproject_interp, "adaptive": rp.reproject_adaptive,
             "exact": rp.reproject_exact}


def whole(method, a, wcs_in, wcs_out, shape, **params):
    out = FUNCTIONS[method]((a, wcs_in), wcs_out, shape_out=shape, return_footprint=False,
                            **params)
    return out.astype("float32")


@pytest.mark.parametrize("tile", [64, {"y": 97, "x": 300}])
def test_hst_rotated_30_degrees_equals_reproject_interp_bit_for_bit(tile):
    a, wcs = hst()
    # Larger than the rotated input, so that tiles at the edges leave its footprint.
    target = turned(wcs, 30, [700.0, 650.0])
    got = ops.reproject(with_wcs(a, wcs), wcs=target, shape=(1300, 1400))
    assert got.shape == (1300, 1400) and got.dtype == np.float32
    expected = whole("interp", a, wcs, target, (1300, 1400))
    assert np.isnan(expected).any() and not np.isnan(expected).all()
    np.testing.assert_array_equal(got.compute(tile=tile), expected, strict=True)


@pytest.mark.parametrize(("method", "order", "scale"), [
    ("interp", "nearest-neighbor", 1.0), ("interp", "bicubic", 1.0),
    ("interp", "biquadratic", 0.6), ("adaptive", "bilinear", 1.0),
    ("adaptive", "bilinear", 2.5), ("exact", "bilinear", 1.0), ("exact", "bilinear", 1.7)])
def test_every_method_equals_reproject_bit_for_bit(method, order, scale):
    a, wcs = hst()
    a, wcs = a[300:556, 400:656], wcs[300:556, 400:656]
    shape = (int(300 / scale), int(280 / scale))
    target = turned(wcs, -41, [shape[1] / 2 + 7.25, shape[0] / 2 - 3.5], scale)
    got = ops.reproject(with_wcs(a, wcs), wcs=target, shape=shape, method=method, order=order)
    params = {"order": order} if method == "interp" else {}
    expected = whole(method, a, wcs, target, shape, **params)
    for tile in (23, 64):
        np.testing.assert_array_equal(got.compute(tile=tile), expected, strict=True)


@pytest.mark.parametrize("executor", ["serial", "threads", "processes"])
def test_executors_agree_bit_for_bit(executor):
    """reproject is documented as not thread-safe (astropy's WCS objects are not); each
    call here builds its own, so four threads on small tiles give the serial result."""
    a, wcs = hst()
    a, wcs = a[:300, :300], wcs[:300, :300]
    target = turned(wcs, 12, [160.0, 140.0])
    img = ops.reproject(with_wcs(a, wcs), wcs=target, shape=(320, 330), method="adaptive")
    expected = whole("adaptive", a, wcs, target, (320, 330))
    for _ in range(2 if executor == "threads" else 1):
        got = img.compute(tile=24, executor=executor, workers=4)
        np.testing.assert_array_equal(got, expected, strict=True)


def test_a_tile_reads_its_footprint_not_the_whole_input():
    a, wcs = hst()
    target = turned(wcs, 30, [512.5, 512.5])
    out = ops.reproject(with_wcs(a, wcs), wcs=target, shape=(1024, 1024))
    read = read_pixels(Pipeline.of([out]), TileGrid((1024, 1024), (128, 128)))
    # The bounding box of a square turned by 30 degrees is 1.87 x its area; reproject's 64
    # blocks would each read all 1024 x 1024 input pixels.
    assert read < 2 * 1024 * 1024


def test_tiles_outside_the_input_and_channels():
    a, wcs = hst()
    cube = np.stack([a[:200, :200], 2 * a[:200, :200]])
    # Output pixels are input pixels shifted by about (-32, 8): tiles right of column ~175
    # map entirely beside the input, those at its edges partly.
    target = turned(wcs[:200, :200], 5, [480.0, 520.0])
    img = tw.map(np.asarray, tw.open(cube, axes="cyx"), meta={"wcs": wcs[:200, :200]})
    got = ops.reproject(img, wcs=target, shape=(180, 400)).compute(tile=40)
    expected = whole("interp", cube, wcs[:200, :200], target, (2, 180, 400))
    assert np.isnan(expected[:, :, 250:]).all() and not np.isnan(expected).all()
    np.testing.assert_array_equal(got, expected, strict=True)


def test_output_metadata_and_nodata():
    a, wcs = hst()
    a = a[:100, :100].copy()
    a[40:45, 50:60] = -1
    img = tw.map(np.asarray, tw.open(a), meta={"wcs": wcs[:100, :100], "nodata": -1.0})
    target = turned(wcs[:100, :100], 10, [50.0, 50.0])
    out = ops.reproject(img, wcs=target, shape=(100, 100))
    corners = np.array([0.0, 99.0, 0.0, 99.0]), np.array([0.0, 0.0, 99.0, 99.0])
    assert np.array_equal(out.meta["wcs"].pixel_to_world_values(*corners),
                          target.pixel_to_world_values(*corners))
    assert out.meta["wcs"].pixel_shape == (100, 100) and "transform" not in out.meta
    assert math.isnan(out.meta["nodata"])
    expected = whole("interp", np.where(a == -1, np.nan, a), wcs[:100, :100], target,
                     (100, 100))
    np.testing.assert_array_equal(out.compute(tile=30), expected, strict=True)


def test_bad_parameters():
    a, wcs = hst()
    with pytest.raises(ParameterError, match="meta\\['wcs'\\]"):
        ops.reproject(tw.open(a), wcs=wcs, shape=(10, 10))
    with pytest.raises(ParameterError, match="method"):
        ops.reproject(with_wcs(a, wcs), wcs=wcs, shape=(10, 10), method="drizzle")
    dem = tw.open(data_path("dem", "srtm90.tif"))
    with pytest.raises(ParameterError, match="transform and shape"):
        ops.warp(dem, crs="EPSG:32611", transform=(1, 0, 0, 0, -1, 0))
    with pytest.raises(ParameterError, match="CRS and a transform"):
        ops.warp(tw.open(a), crs="EPSG:32611")


def gdal_whole(a, src, crs, transform, shape, resampling, options):
    out = np.full(shape, np.nan, "float32")
    rasterio.warp.reproject(a, out, src_transform=src.transform, src_crs=src.crs,
                            dst_transform=transform, dst_crs=crs, dst_nodata=np.nan,
                            resampling=Resampling[resampling], **options)
    return out


def assert_within_approximation(got, expected):
    """GDAL (as rasterio calls it) interpolates source coordinates linearly along each row of
    the chunk it warps, up to 1/8 input pixel off, so where chunks start changes values by up
    to about that shift times the local gradient, and may move a pixel on the footprint's edge
    in or out of it. Bound: a quarter of the 3 x 3 range of the whole-array result."""
    data = ~np.isnan(expected)
    flipped = np.isnan(got) != np.isnan(expected)
    edge = ndimage.binary_dilation(~data) & ndimage.binary_dilation(data)
    assert not (flipped & ~edge).any(), "nodata differs away from the footprint's edge"
    filled = np.where(data, expected, 0)
    spread = ndimage.maximum_filter(filled, 3) - ndimage.minimum_filter(filled, 3)
    both = data & ~np.isnan(got)
    diff = np.abs(got[both].astype(float) - expected[both])
    assert (diff <= 0.25 * spread[both] + 1e-3).all(), diff.max()


@pytest.mark.parametrize("tile", [256, {"y": 700, "x": 1500}])
def test_srtm_to_utm_matches_gdal_whole_array_warp(tile):
    path = data_path("dem", "srtm90.tif")
    dem = tw.open(path)
    utm = ops.warp(dem, crs="EPSG:32611")
    with rasterio.open(path) as src:
        a = src.read(1)
        transform, width, height = calculate_default_transform(
            src.crs, "EPSG:32611", src.width, src.height, *src.bounds)
        assert utm.shape == (height, width) and utm.meta["transform"] == transform
        assert utm.meta["crs"] == rasterio.crs.CRS.from_epsg(32611)
        grid = ops.reprojection.warp_grid(dem, "EPSG:32611")
        expected = gdal_whole(a, src, "EPSG:32611", transform, (height, width), "bilinear",
                              grid.options)
    got = utm.compute(tile=tile)
    assert got.dtype == np.float32 and np.isnan(got).any()
    assert_within_approximation(got, expected)


def test_warp_on_a_given_grid_with_threads_and_processes():
    path = data_path("dem", "srtm90.tif")
    dem = tw.open(path)[1000:1400, 2000:2600]
    transform = Affine(100.0, 0, 260_000.0, 0, -100.0, 4_160_000.0)
    utm = ops.warp(dem, crs="EPSG:32611", transform=tuple(transform), shape=(300, 400),
                   resampling="cubic")
    serial = utm.compute(tile=64, executor="serial")
    for executor in ("threads", "processes"):
        np.testing.assert_array_equal(utm.compute(tile=64, executor=executor, workers=3),
                                      serial, strict=True)
    with rasterio.open(path) as src:
        a = src.read(1, window=((1000, 1400), (2000, 2600)))
        window_transform = src.transform @ Affine.translation(2000, 1000)
        grid = ops.reprojection.warp_grid(dem, "EPSG:32611", None, tuple(transform),
                                          (300, 400), "cubic")
        ref = type("Src", (), {"transform": window_transform, "crs": src.crs})
        expected = gdal_whole(a, ref, "EPSG:32611", transform, (300, 400), "cubic",
                              grid.options)
    assert_within_approximation(serial, expected)


def test_the_examples_run(tmp_path):
    """examples/hst_reproject.py (checks itself against whole-array reproject) and
    examples/srtm_utm_cog.yaml (a valid COG), run as a user would, in a copy of examples/."""
    import shutil
    import subprocess
    import sys

    from rio_cogeo.cogeo import cog_validate

    fits_path = data_path("astronomy", "j8bt06nyq_flt.fits")
    data_path("dem", "srtm90.tif")
    here = tmp_path / "examples"
    root = os.path.join(os.path.dirname(__file__), "..", "examples")
    shutil.copytree(root, here, ignore=shutil.ignore_patterns("out"))
    env = {**os.environ, "TILEWISE_DATA": os.path.dirname(os.path.dirname(fits_path))}
    done = subprocess.run([sys.executable, str(here / "hst_reproject.py"), fits_path],
                          capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    assert "equal to reproject_interp on the whole array" in done.stdout
    done = subprocess.run([sys.executable, "-m", "tilewise.cli", "run",
                           str(here / "srtm_utm_cog.yaml"), "--quiet"],
                          capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    assert cog_validate(str(here / "out" / "srtm90_utm11n.cog.tif"))[0]
