"""Nodata ops: the mask, GDAL's fillnodata tiled equal to whole with the halo it declares (and
wrong with less), and the CNES chain of examples/cnes_dsm.yaml."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import data_path
from hypothesis import given, settings
from hypothesis import strategies as st
from rasterio.fill import fillnodata as gdal_fill
from scipy import ndimage

import tilewise as tw
from tilewise import library as ops
from tilewise.errors import ParameterError
from tilewise.library.nodata import fill_margin

EXAMPLE = Path(__file__).parent.parent / "examples" / "cnes_dsm.yaml"
NODATA = -32768.0


def whole(image):
    return tw.compute(image, tile=image.shape, executor="serial")


def with_nodata(a, nodata=NODATA):
    return tw.map(lambda x: x, tw.open(a), meta={"nodata": nodata})


def holes(shape, seed, nodata=NODATA):
    """A smooth surface with a square hole wider than 60 pixels, disks and scattered pixels."""
    rng = np.random.default_rng(seed)
    a = rng.normal(0, 1, shape).cumsum(0).cumsum(1).astype("float32")
    yy, xx = np.mgrid[:shape[0], :shape[1]]
    gone = (abs(yy - shape[0] // 2) < 35) & (abs(xx - shape[1] // 2) < 35)
    for _ in range(5):
        cy, cx, r = rng.integers(0, shape[0]), rng.integers(0, shape[1]), rng.integers(5, 40)
        gone |= (yy - cy) ** 2 + (xx - cx) ** 2 < r * r
    gone |= rng.random(shape) < 0.01
    a[gone] = nodata
    return a


def reference(a, nodata, **params):
    """rasterio's fillnodata on the whole array, as the CNES chain calls it."""
    return gdal_fill(a.copy(), (a != nodata).astype("uint8"), **params)


def users_fill(a, *, nodata, max_search_distance, smoothing_iterations):
    """What users wrote for `tw.map`: rasterio's fillnodata on each tile's window."""
    return reference(np.array(a), nodata, max_search_distance=max_search_distance,
                     smoothing_iterations=smoothing_iterations)


def wrong_pixels(image, margin, tile, **params):
    tiled = tw.map(users_fill, image, margin=margin, nodata=NODATA, **params)
    return np.argwhere(tw.compute(tiled, tile=tile, executor="threads") != whole(tiled))


def test_nodata_mask_is_255_where_valid_and_0_at_nan_or_nodata():
    a = np.arange(30, dtype="float32").reshape(5, 6)
    a[1, 2], a[3, 4] = np.nan, -9999
    mask = ops.nodata_mask(with_nodata(a, -9999))
    expected = np.full(a.shape, 255, "uint8")
    expected[1, 2] = expected[3, 4] = 0
    np.testing.assert_array_equal(tw.compute(mask, tile=2), expected, strict=True)
    assert mask.meta["nodata"] is None
    ints = np.array([[0, 7], [7, 3]], "int16")
    np.testing.assert_array_equal(tw.compute(ops.nodata_mask(tw.open(ints))), 255)
    np.testing.assert_array_equal(tw.compute(ops.nodata_mask(with_nodata(ints, 7))),
                                  [[255, 0], [0, 255]])


def test_fillnodata_on_the_montpellier_dsm_tiled_equals_rasterio_on_the_whole():
    dsm = tw.open(data_path("dem", "dsm_montpellier.tif"))
    raw = whole(dsm)
    expected = reference(raw, dsm.meta["nodata"], max_search_distance=100.0)
    filled = ops.fillnodata(dsm)
    assert filled.meta["nodata"] == dsm.meta["nodata"] and filled.dtype == np.float32
    for tile, executor in [(32, "threads"), (100, "processes"), (128, "threads"),
                           ({"y": 64, "x": 512}, "processes")]:
        got = tw.compute(filled, tile=tile, executor=executor, workers=2)
        np.testing.assert_array_equal(got, expected, strict=True)
    assert (raw == NODATA).sum() == 50 and not (expected == NODATA).any()


@pytest.mark.parametrize("distance,passes", [(30.0, 0), (12.5, 2), (45.0, 3)])
def test_holes_larger_than_tiles_and_than_the_search_distance(distance, passes):
    a = holes((230, 260), seed=4)
    expected = reference(a, NODATA, max_search_distance=distance, smoothing_iterations=passes)
    filled = ops.fillnodata(with_nodata(a), max_search_distance=distance,
                            smoothing_iterations=passes)
    for tile, executor in [(24, "threads"), (61, "processes"), ({"y": 97, "x": 40}, "serial")]:
        got = tw.compute(filled, tile=tile, executor=executor, workers=2)
        np.testing.assert_array_equal(got, expected, strict=True)
    left = a[115, 130] == NODATA and expected[115, 130] == NODATA   # 35 pixels from any data
    assert left == (distance < 35)
    assert ((expected != NODATA) > (a != NODATA)).any()
    np.testing.assert_array_equal(expected[a != NODATA], a[a != NODATA])


@st.composite
def image_and_tile(draw):
    shape = (draw(st.integers(1, 40)), draw(st.integers(1, 40)))
    tile = (draw(st.integers(1, shape[0])), draw(st.integers(1, shape[1])))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    dtype = draw(st.sampled_from(["float32", "float64", "int16", "uint8"]))
    a = (rng.random(shape) * 200).astype(dtype)
    gone = ndimage.binary_dilation(rng.random(shape) < draw(st.floats(0, 0.2)),
                                   iterations=draw(st.integers(0, 4)))
    nodata = np.nan if dtype.startswith("float") and draw(st.booleans()) else 0
    a[gone] = nodata
    return a, nodata, tile


@settings(max_examples=60)
@given(case=image_and_tile(), distance=st.floats(0.5, 15), passes=st.integers(0, 3),
       executor=st.sampled_from(["serial", "threads"]))
def test_fillnodata_tiled_equals_whole(case, distance, passes, executor):
    a, nodata, tile = case
    filled = ops.fillnodata(with_nodata(a, nodata), max_search_distance=distance,
                            smoothing_iterations=passes)
    expected = whole(filled)
    got = tw.compute(filled, tile=tile, executor=executor, workers=2)
    np.testing.assert_array_equal(got, expected, strict=True)
    ok = ~np.isnan(a) & (a != nodata) if a.dtype.kind == "f" else a != nodata
    np.testing.assert_array_equal(expected[ok], a[ok])


def test_a_margin_one_short_of_the_search_distance_misses_data_exactly_that_far():
    # Data in column 0 and from column 301 on: column 100 is filled from column 0, exactly
    # max_search_distance = 100 away, which a tile starting at column 100 with 99 pixels of
    # halo does not see.
    a = np.tile(np.linspace(50, 90, 400, dtype="float32"), (40, 1))
    a[:, 1:301] = NODATA
    image = with_nodata(a)
    params = {"max_search_distance": 100.0, "smoothing_iterations": 0}
    wrong = wrong_pixels(image, 99, {"y": 40, "x": 100}, **params)
    assert sorted({int(x) for _, x in wrong}) == [100] and len(wrong) == 40
    declared = ops.fillnodata(image, **params)
    np.testing.assert_array_equal(tw.compute(declared, tile={"y": 40, "x": 100}),
                                  reference(a, NODATA, **params))


def test_each_smoothing_pass_needs_one_more_pixel_of_halo():
    image = with_nodata(holes((200, 200), seed=1))
    params = {"max_search_distance": 20.0, "smoothing_iterations": 3}
    margin = fill_margin(**params)
    assert margin == 23
    assert len(wrong_pixels(image, margin - 1, 37, **params)) > 0
    assert len(wrong_pixels(image, margin, 37, **params)) == 0


def test_the_users_margin_of_40_for_a_search_distance_of_100_is_wrong_on_big_holes():
    image = with_nodata(holes((300, 300), seed=2))
    params = {"max_search_distance": 100.0, "smoothing_iterations": 0}
    assert len(wrong_pixels(image, 40, 64, **params)) > 100
    assert len(wrong_pixels(image, fill_margin(**params), 64, **params)) == 0


def test_float64_and_integer_images_keep_their_valid_pixels_exactly():
    a = np.linspace(0, 1, 400).reshape(20, 20) + 1e-9
    a[5:9, 5:9] = np.nan
    filled = tw.compute(ops.fillnodata(tw.open(a), max_search_distance=10), tile=7)
    assert filled.dtype == np.float64 and not np.isnan(filled).any()
    np.testing.assert_array_equal(filled[~np.isnan(a)], a[~np.isnan(a)])
    big = np.full((10, 10), 2**40 + 1, "int64")
    big[4, 4] = 0
    filled = tw.compute(ops.fillnodata(with_nodata(big, 0)), tile=3)
    assert filled.dtype == np.int64 and filled[0, 0] == 2**40 + 1 and filled[4, 4] > 0


def test_bands_are_filled_one_by_one():
    a = np.stack([holes((80, 90), seed=s) for s in (5, 6)])
    filled = ops.fillnodata(tw.map(lambda x: x, tw.open(a, axes="cyx"),
                                   meta={"nodata": NODATA}), max_search_distance=15)
    got = tw.compute(filled, tile={"y": 20, "x": 33}, executor="threads")
    for band in range(2):
        np.testing.assert_array_equal(got[band], reference(a[band], NODATA,
                                                           max_search_distance=15.0))


@pytest.mark.parametrize("image,params,message", [
    (np.zeros((4, 4), "float32"), {"max_search_distance": 0}, "must be a positive number"),
    (np.zeros((4, 4), "float32"), {"max_search_distance": True}, "must be a positive number"),
    (np.zeros((4, 4), "float32"), {"smoothing_iterations": -1}, "non-negative integer"),
    (np.zeros((4, 4), "float32"), {"smoothing_iterations": 1.5}, "non-negative integer"),
    (np.zeros((4, 4), "float16"), {}, "not float16"),
    (np.zeros((4, 4), "bool"), {}, "not bool"),
    (np.zeros(4, "float32"), {}, "needs an image with axes 'y' and 'x'"),
    (np.zeros((4, 4), "float32"), {"search": 3}, "has no parameter 'search'"),
])
def test_bad_parameters_are_refused_when_the_op_is_built(image, params, message):
    with pytest.raises(ParameterError, match=message):
        ops.fillnodata(tw.open(image), **params)


def test_the_cnes_example_pipeline_equals_the_whole_array_chain(tmp_path):
    dsm_path = data_path("dem", "dsm_montpellier.tif")
    folder = tmp_path / "examples"
    folder.mkdir()
    text = EXAMPLE.read_text()
    assert "../../shared/data/dem/dsm_montpellier.tif" in text
    (folder / "cnes_dsm.yaml").write_text(
        text.replace("../../shared/data/dem/dsm_montpellier.tif", os.path.abspath(dsm_path)))
    done = subprocess.run([sys.executable, "-m", "tilewise.cli", "run",
                           str(folder / "cnes_dsm.yaml"), "--quiet", "--executor", "processes"],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    raw = tw.open(dsm_path).compute()
    mask = tw.open(folder / "out" / "dsm_mask.tif").compute()
    np.testing.assert_array_equal(mask, np.where(raw != NODATA, 255, 0).astype("uint8"))
    filled = tw.open(folder / "out" / "dsm_filled.tif")
    expected = gdal_fill(raw.copy(), mask, max_search_distance=100.0, smoothing_iterations=0)
    np.testing.assert_array_equal(filled.compute(), expected, strict=True)
    assert filled.meta["nodata"] == NODATA
    smooth = tw.open(folder / "out" / "dsm_smooth.tif").compute()
    np.testing.assert_array_equal(smooth, whole(ops.mean(tw.open(expected), size=3,
                                                         mode="reflect")))
    np.testing.assert_allclose(smooth, ndimage.uniform_filter(expected, 3), atol=1e-4)
