"""Tiled == whole-array on real DEMs (with and without nodata) and a 7-band Landsat scene."""

import numpy as np
import pytest
import rasterio
from conftest import above_resident, data_path
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
            workers=2, memory=above_resident("1GiB"), tile=1024)
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


@pytest.mark.parametrize("name", ["srtm90.tif", "lidar_TM1_564_146.tif", "co_elevation_roi.tif",
                                  "dsm_montpellier.tif"])
def test_uniform_filter_is_exact_on_integer_and_float32_dems(name):
    """SciPy's running mean drifts by ~1e-13 with where its line starts, but rounding it to
    int16 or float32 absorbs the drift on these real DEMs (a value at a rounding boundary could
    still differ: this is measured, not guaranteed)."""
    path = data_path("dem", name)
    got = tw.map(smooth, tw.open(path), margin=4).compute(tile=37)
    np.testing.assert_array_equal(got, smooth(read(path)), strict=True)


def test_uniform_filter_is_not_exact_in_float64_but_mean_is():
    """In float64 nothing absorbs the drift, even for integer elevations whose every sum is
    exact: SciPy adds each step's difference divided by the size. `ops.mean` (a correlation)
    is exact for the same input; this is why the README tells people to prefer it."""
    from tilewise import library as ops

    dem = tw.open(data_path("dem", "srtm90.tif"))[:600, :900]
    as64 = tw.map(lambda a: a.astype("float64"), dem, dtype="float64")
    whole = smooth(read(data_path("dem", "srtm90.tif"))[:600, :900].astype("float64"))
    got = tw.map(smooth, as64, margin=4).compute(tile=37)
    assert (got != whole).mean() > 0.5  # not a rare rounding: most pixels differ
    np.testing.assert_allclose(got, whole, rtol=1e-12)  # ... in the last few bits
    mean = ops.mean(as64, size=9)
    np.testing.assert_array_equal(mean.compute(tile=37), mean.compute(tile=mean.shape),
                                  strict=True)


def test_a_nan_poisons_uniform_filter_for_the_rest_of_its_line_but_not_mean():
    """On the whole lidar tile a NaN spreads to the end of its row and column; tiled, only to
    the end of the tile, so the results differ. `ops.mean` makes NaN exactly the pixels whose
    9 x 9 box holds one, tiled or not."""
    from tilewise import library as ops

    path = data_path("dem", "lidar_TM1_564_146_nodata.tif")
    dem = tw.open(path)
    holes = np.isnan(read(path))
    boxes = ndimage.maximum_filter(holes, size=9, mode="nearest")
    whole = smooth(read(path))
    assert np.isnan(whole).sum() > 2 * boxes.sum()  # far beyond the boxes of the holes
    tiled = tw.map(smooth, dem, margin=4).compute(tile=96)
    assert np.isnan(tiled).sum() < np.isnan(whole).sum()
    mean = ops.mean(dem, size=9)
    got = mean.compute(tile=96)
    np.testing.assert_array_equal(np.isnan(got), boxes)
    np.testing.assert_array_equal(got, mean.compute(tile=mean.shape), strict=True)


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
