"""Built-in ops: tiled equals whole image, bit for bit, for every op; parameter checks.

Tiling invariance only: an op that is wrong is wrong the same way on every tile. Whether the
results are right is checked against independent references in `test_references.py`.
"""

import numpy as np
import pytest
from conftest import data_path
from hypothesis import given
from hypothesis import strategies as st
from scipy import ndimage

import tilewise as tw
from tilewise import library as ops

FILTERS = [
    (ops.mean, {"size": 5}), (ops.mean, {"size": 4, "mode": "mirror"}),
    (ops.gaussian, {"sigma": 1.7}), (ops.gaussian, {"sigma": 0.8, "mode": "constant"}),
    (ops.median, {"size": 3}), (ops.minimum, {"size": 4}), (ops.maximum, {"size": 5}),
    (ops.gradient_magnitude, {}),
]
TERRAIN = [(ops.slope, {}), (ops.slope, {"units": "percent", "ve_factor": 2}), (ops.aspect, {}),
           (ops.hillshade, {"azimuth": 200, "elevation": 30}), (ops.stretch, {}),
           (ops.stretch, {"percentiles": [0.5, 99.5]})]


def whole(image):
    return tw.compute(image, tile=image.shape, executor="serial")


def assert_tiled_is_whole(image, tile, executor):
    expected = whole(image)
    got = tw.compute(image, tile=tile, executor=executor, workers=2)
    assert got.dtype == expected.dtype
    np.testing.assert_array_equal(got, expected, strict=True)


@st.composite
def dem_and_tile(draw, ndim=2):
    shape = tuple(draw(st.integers(2, 45)) for _ in range(ndim))
    tile = tuple(draw(st.integers(1, n)) for n in shape)
    seed = draw(st.integers(0, 2**32 - 1))
    values = np.random.default_rng(seed).normal(0, 50, shape).cumsum(axis=-1)
    dtype = draw(st.sampled_from(["float32", "float64", "int16", "uint8"]))
    a = np.clip(values, -30000, 30000) if dtype != "uint8" else np.abs(values) % 256
    a = a.astype(dtype)
    if dtype == "float32" and draw(st.booleans()):
        a.flat[draw(st.integers(0, a.size - 1))] = np.nan
    return a, tile


@pytest.mark.parametrize("op,params", FILTERS, ids=lambda p: getattr(p, "__name__", str(p)))
@given(case=dem_and_tile(), executor=st.sampled_from(["serial", "threads"]))
def test_filters_tiled_equal_whole(op, params, case, executor):
    a, tile = case
    assert_tiled_is_whole(op(tw.open(a), **params), tile, executor)


@pytest.mark.parametrize("op,params", FILTERS[:3], ids=lambda p: getattr(p, "__name__", str(p)))
@given(case=dem_and_tile(ndim=3))
def test_filters_on_channels_filter_each_channel(op, params, case):
    a, (_, ty, tx) = case
    image = op(tw.open(a, axes="cyx"), **params)
    assert_tiled_is_whole(image, {"y": ty, "x": tx}, "threads")
    one = op(tw.open(np.ascontiguousarray(a[1])), **params)
    np.testing.assert_array_equal(whole(image)[1], whole(one))


@pytest.mark.parametrize("op,params", TERRAIN, ids=lambda p: getattr(p, "__name__", str(p)))
@given(case=dem_and_tile(), executor=st.sampled_from(["serial", "threads"]))
def test_terrain_and_stretch_tiled_equal_whole(op, params, case, executor):
    a, tile = case
    assert_tiled_is_whole(op(tw.open(a), **params), tile, executor)


def test_filters_match_scipy_on_the_whole_image():
    a = np.random.default_rng(1).normal(size=(60, 70)).astype("float32")
    img = tw.open(a)
    np.testing.assert_array_equal(
        tw.compute(ops.gaussian(img, sigma=2), tile=16),
        ndimage.gaussian_filter(a, 2, mode="nearest"))
    np.testing.assert_array_equal(tw.compute(ops.median(img, size=5), tile=16),
                                  ndimage.median_filter(a, 5, mode="nearest"))
    np.testing.assert_allclose(tw.compute(ops.mean(img, size=5), tile=16),
                               ndimage.uniform_filter(a, 5, mode="nearest"), atol=1e-6)


def test_terrain_on_a_real_dem_with_nodata_in_processes():
    dem = tw.open(data_path("dem", "lidar_TM1_564_146_nodata.tif"))
    nodata = dem.meta["nodata"]
    for image in (ops.slope(dem), ops.hillshade(ops.gaussian(dem, sigma=1))):
        expected = whole(image)
        np.testing.assert_array_equal(
            tw.compute(image, tile=128, executor="processes", workers=2), expected)
    raw = whole(dem)
    assert np.isnan(nodata) and np.isnan(raw).sum() == 500
    for image in (ops.slope(dem), ops.hillshade(dem)):
        np.testing.assert_array_equal(np.isnan(whole(image)), np.isnan(raw))


def test_slope_of_a_plane_in_metres_and_degrees():
    # 10 m pixels, rising 1 m per pixel to the east: slope atan(0.1) inside (half that
    # difference at the east and west edges), aspect west (-90).
    from affine import Affine

    a = np.tile(np.arange(50, dtype="float32"), (40, 1))
    dem = tw.map(lambda x: x, tw.open(a), meta={"transform": Affine(10, 0, 0, 0, -10, 0)})
    slope = tw.compute(ops.slope(dem))
    np.testing.assert_allclose(slope[:, 1:-1], np.degrees(np.arctan(0.1)), rtol=1e-6)
    np.testing.assert_allclose(slope[:, [0, -1]], np.degrees(np.arctan(0.05)), rtol=1e-6)
    np.testing.assert_allclose(tw.compute(ops.aspect(dem)), -90, rtol=1e-6)


def test_stretch_uses_exact_percentiles_and_keeps_nodata():
    a = np.arange(1000, dtype="float32").reshape(20, 50)
    a[0, :5] = -9999
    image = tw.map(lambda x: x, tw.open(a), meta={"nodata": -9999})
    out = tw.compute(ops.stretch(image, percentiles=[10, 90]), tile=7)
    valid = a[a != -9999]
    low, high = np.percentile(valid, [10, 90])
    expected = 1 + np.rint(254 * np.clip((a - low) / (high - low), 0, 1))
    expected[a == -9999] = 0
    np.testing.assert_array_equal(out, expected.astype("uint8"))


@pytest.mark.parametrize("call,message", [
    (lambda img: ops.mean(img, size=0), "size of op 'mean' must be at least 1"),
    (lambda img: ops.gaussian(img, sigma=-1), "sigma of op 'gaussian' must be a positive"),
    (lambda img: ops.median(img, size=3, mode="wrap"), "mode='wrap' of op 'median'"),
    (lambda img: ops.slope(img, units="radians"), "units of op 'slope'"),
    (lambda img: ops.stretch(img, percentiles=[90, 10]), "percentiles of op 'stretch'"),
    (lambda img: ops.hillshade(img, azimuth="north"), "azimuth of op 'hillshade'"),
])
def test_bad_parameters_are_named(call, message):
    with pytest.raises(tw.ParameterError, match=message.replace("(", r"\(")):
        call(tw.open(np.zeros((20, 20), "float32")))


def test_reflect_mode_on_a_tiny_axis_is_refused():
    with pytest.raises(tw.ParameterError, match="use mode='mirror'"):
        ops.mean(tw.open(np.zeros((3, 40), "float32")), size=9, mode="reflect")


def test_terrain_needs_a_2d_dem():
    with pytest.raises(tw.ParameterError, match="axes"):
        ops.slope(tw.open(np.zeros((2, 5, 5), "float32"), axes="cyx"))
