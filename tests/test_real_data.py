"""Tiled == whole-array on real DEMs (with and without nodata) and a 7-band Landsat scene."""

import numpy as np
import pytest
import rasterio
from conftest import data_path
from scipy import ndimage

import tilewise as tw


def read(path):
    with rasterio.open(path) as ds:
        return ds.read(1) if ds.count == 1 else ds.read()


def slope(a):
    gy, gx = np.gradient(a.astype("float64"))
    return np.hypot(gy, gx)


def smooth(a):
    return ndimage.uniform_filter(a, size=9)


def masked(a, *, nodata):
    out = a.astype("float32")
    out[(a == nodata) | ~np.isfinite(a)] = np.nan
    return out


def gaussian(a):
    return ndimage.gaussian_filter(a, sigma=2)


@pytest.mark.parametrize("executor", ["threads", "processes"])
def test_srtm_chain_to_geotiff(tmp_path, executor):
    path = data_path("dem", "srtm90.tif")
    dem = tw.open(path)
    assert dem.dtype == np.int16 and dem.blocks == (512, 512)
    s = tw.map(smooth, dem, margin=4)
    out = tw.map(slope, s, margin=1, dtype="float32")
    tw.save([s, out], [tmp_path / "s.tif", tmp_path / "slope.zarr"], executor=executor,
            workers=2, memory="1GiB", tile=1024)
    whole_s = smooth(read(path))
    np.testing.assert_array_equal(read(tmp_path / "s.tif"), whole_s, strict=True)
    got = tw.open(tmp_path / "slope.zarr").compute()
    np.testing.assert_array_equal(got, slope(whole_s).astype("float32"), strict=True)
    with rasterio.open(path) as a, rasterio.open(tmp_path / "s.tif") as b:
        assert (a.crs, a.transform) == (b.crs, b.transform)


@pytest.mark.parametrize("name, tile", [
    ("lidar_TM1_564_146.tif", 128), ("lidar_TM1_564_146_nodata.tif", 100),
    ("co_elevation_roi.tif", 256), ("dsm_montpellier.tif", 64),
])
def test_dems_with_nodata_gaussian_and_slope(name, tile):
    path = data_path("dem", name)
    dem = tw.open(path)
    nodata = dem.meta["nodata"]
    m = tw.map(masked, dem, nodata=np.nan if nodata is None else nodata, dtype="float32")
    g = tw.map(gaussian, m, margin=8)
    out = tw.map(slope, g, margin=1, dtype="float32")
    got = out.compute(tile=tile, workers=2)
    whole = slope(gaussian(masked(read(path), nodata=np.nan if nodata is None else nodata)))
    np.testing.assert_array_equal(got, whole.astype("float32"), strict=True)
    if name in ("lidar_TM1_564_146_nodata.tif", "dsm_montpellier.tif"):
        assert np.isnan(got).any()  # the holes really are there and spread the same way


def test_lidar_float_uniform_filter_is_exact_on_real_data():
    path = data_path("dem", "lidar_TM1_564_146.tif")
    got = tw.map(smooth, tw.open(path), margin=4).compute(tile=96)
    np.testing.assert_array_equal(got, smooth(read(path)), strict=True)


def test_landsat_seven_bands(tmp_path):
    path = data_path("satellite", "landsat.tif")
    scene = tw.open(path)
    assert scene.shape == (7, 1482, 1489) and scene.axes == ("c", "y", "x")

    share = tw.map(lambda a: (a / np.maximum(a.sum(0), 1)).astype("float32"), scene,
                   dtype="float32")
    med = tw.map(lambda a: ndimage.median_filter(a, size=(1, 5, 5)), share, margin=2)
    tw.save(med, tmp_path / "share.tif", tile=256, workers=2)
    whole = read(path)
    share_whole = (whole / np.maximum(whole.sum(0), 1)).astype("float32")
    np.testing.assert_array_equal(read(tmp_path / "share.tif"),
                                  ndimage.median_filter(share_whole, size=(1, 5, 5)), strict=True)
    with rasterio.open(tmp_path / "share.tif") as ds:
        assert ds.count == 7 and ds.crs is not None
