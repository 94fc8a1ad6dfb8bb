"""Reductions equal NumPy on the whole array, whatever the tiling, executor or NaN holes."""

import math
import warnings

import numpy as np
import pytest
from conftest import data_path
from hypothesis import given, settings
from hypothesis import strategies as st

import tilewise as tw
from tilewise.exact import ExactSum, tile_sum


@st.composite
def images(draw, dtypes=("float32", "float64", "int16", "uint8")):
    shape = (draw(st.integers(1, 40)), draw(st.integers(1, 40)))
    dtype = draw(st.sampled_from(dtypes))
    seed = draw(st.integers(0, 2**16))
    rng = np.random.default_rng(seed)
    if np.dtype(dtype).kind == "f":
        a = (rng.normal(0, 1, shape) * 10.0 ** rng.integers(-3, 6, shape)).astype(dtype)
        a[rng.random(shape) < draw(st.sampled_from([0, 0.2, 1.0]))] = np.nan
    else:
        info = np.iinfo(dtype)
        a = rng.integers(info.min, info.max, shape, endpoint=True).astype(dtype)
    tile = (draw(st.integers(1, shape[0])), draw(st.integers(1, shape[1])))
    return a, tile


def nan_reference(how, a):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return getattr(np, "nan" + how)(a)


@settings(max_examples=60)
@given(images(), st.sampled_from(["serial", "threads"]))
def test_min_max_argmin_count_exact(case, executor):
    a, tile = case
    img = tw.open(a)
    for how in ("min", "max"):
        got = tw.reduce(img, how).compute(executor=executor, tile=tile)
        np.testing.assert_array_equal(got, nan_reference(how, a))
    valid = ~np.isnan(a) if a.dtype.kind == "f" else np.ones(a.shape, bool)
    assert tw.reduce(img, "count").compute() == valid.sum()
    if valid.any():
        assert tw.reduce(img, "argmin").compute() == nan_reference("argmin", a)
        assert tw.reduce(img, "argmax").compute() == nan_reference("argmax", a)


@settings(max_examples=60)
@given(images())
def test_sums_are_exactly_rounded_whatever_the_tiling(case):
    a, tile = case
    values = a[~np.isnan(a)] if a.dtype.kind == "f" else a.ravel()
    exact = math.fsum(values.astype("float64"))
    results = set()
    for t in (tile, (1, 1), a.shape):
        img = tw.map(np.asarray, tw.open(a))
        results.add(tw.evaluate([tw.reduce(img, "sum")], executor="threads", tile=t)[0])
    assert results == {exact}
    if values.size:
        mean = tw.reduce(tw.open(a), "mean").compute()
        assert mean == exact / values.size


@settings(max_examples=40)
@given(images(dtypes=("float32", "float64")), st.integers(0, 1))
def test_var_std_close_to_numpy(case, ddof):
    a, _ = case
    img = tw.open(a)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = np.nanvar(a.astype("float64"), ddof=ddof)
    got = tw.reduce(img, "var", ddof=ddof).compute()
    np.testing.assert_allclose(got, ref, rtol=1e-10, atol=0)
    np.testing.assert_allclose(tw.reduce(img, "std", ddof=ddof).compute(), np.sqrt(ref),
                               rtol=1e-10)


@settings(max_examples=80)
@given(images(), st.lists(st.floats(0, 100), min_size=1, max_size=4),
       st.sampled_from(["serial", "threads"]))
def test_percentiles_equal_numpy_bit_for_bit(case, q, executor):
    a, tile = case
    img = tw.open(a)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = np.nanpercentile(a, q)
        ref_scalar = np.nanpercentile(a, q[0])
    got = tw.percentile(img, q).compute(executor=executor, tile=tile)
    np.testing.assert_array_equal(got, ref, strict=True)
    scalar = tw.percentile(img, q[0]).compute()
    assert np.asarray(scalar).dtype == np.asarray(ref_scalar).dtype
    np.testing.assert_array_equal(scalar, ref_scalar)
    np.testing.assert_array_equal(tw.quantile(img, np.asarray(q) / 100).compute(),
                                  np.nanquantile(a, np.asarray(q) / 100) if not np.isnan(a).all()
                                  else ref)


def test_percentile_narrows_crowded_bins(monkeypatch):
    import tilewise.reductions as red

    monkeypatch.setattr(red, "CANDIDATES", 50)
    rng = np.random.default_rng(3)
    a = np.concatenate([np.full(5000, 7.0), rng.normal(0, 1, 5000)]).reshape(100, 100)
    q = [0, 1, 33.3, 50, 77, 99.9, 100]
    np.testing.assert_array_equal(tw.percentile(tw.open(a), q).compute(),
                                  np.nanpercentile(a, q), strict=True)


def test_nodata_is_skipped():
    a = np.array([[1, 2, -9999], [4, -9999, 6]], "int16")
    img = tw.map(np.asarray, tw.open(a), meta={"nodata": -9999})
    assert tw.reduce(img, "min").compute() == 1
    assert tw.reduce(img, "count").compute() == 4
    assert tw.reduce(img, "sum").compute() == 13
    assert tw.reduce(img, "count", nodata=None).compute() == 6
    assert tw.percentile(img, 50).compute() == np.percentile([1, 2, 4, 6], 50)


def test_reduction_over_named_axes_gives_a_spectrum():
    rng = np.random.default_rng(4)
    cube = rng.normal(0, 1, (7, 30, 20))
    cube[:, 3, 4] = np.nan
    img = tw.open(cube, axes="zyx")
    spectrum = tw.reduce(img, "sum", axis=("y", "x")).compute()
    assert spectrum.shape == (7,)
    for k in range(7):
        plane = cube[k][~np.isnan(cube[k])]
        assert spectrum[k] == math.fsum(plane)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected_max = np.nanmax(cube, axis=0)
    np.testing.assert_array_equal(tw.reduce(img, "max", axis="z").compute(tile=(3, 7, 5)),
                                  expected_max)
    np.testing.assert_allclose(tw.reduce(img, "mean", axis=("z", "x")).compute(),
                               np.nanmean(cube, axis=(0, 2)), rtol=1e-13)


def test_two_pass_stretch_runs_the_reduction_first(tmp_path):
    rng = np.random.default_rng(5)
    a = rng.gamma(2, 100, (200, 300)).astype("float32")
    img = tw.open(a)
    lo, hi = tw.percentile(img, [2, 98])
    stretched = tw.map(lambda x, lo, hi: np.clip((x - lo) / (hi - lo), 0, 1), img,
                       lo=lo, hi=hi, dtype="float32")
    tw.save(stretched, tmp_path / "s.npy", tile=64, workers=2)
    p2, p98 = np.nanpercentile(a, [2, 98])
    expected = np.clip((a - p2) / (p98 - p2), 0, 1).astype("float32")
    np.testing.assert_array_equal(np.load(tmp_path / "s.npy"), expected)


def test_lazy_values_reach_processes(tmp_path):
    a = np.arange(10000, dtype="float64").reshape(100, 100)
    img = tw.open(a)
    mx = tw.reduce(img, "max")
    scaled = tw.map(_scale, img, top=mx)
    tw.save(scaled, tmp_path / "x.npy", executor="processes", workers=2, tile=25)
    np.testing.assert_array_equal(np.load(tmp_path / "x.npy"), a / a.max())


def _scale(x, *, top):
    return x / top


def test_bad_reductions():
    img = tw.open(np.zeros((3, 3)))
    with pytest.raises(tw.ParameterError, match="'median' is unknown"):
        tw.reduce(img, "median")
    with pytest.raises(tw.ParameterError, match="axis 'q'"):
        tw.reduce(img, "sum", axis="q")
    with pytest.raises(tw.ParameterError, match=r"\[0, 100\]"):
        tw.percentile(img, 101)
    with pytest.raises(tw.ParameterError, match="bins="):
        tw.reduce(img, "histogram")
    with pytest.raises(tw.ParameterError, match="whole image"):
        tw.reduce(img, "argmin", axis="x")


def test_exact_sum_kernel_against_fsum():
    rng = np.random.default_rng(6)
    x = rng.normal(0, 1, 10000) * 10.0 ** rng.integers(-200, 200, 10000)
    acc = ExactSum()
    for part in np.array_split(x, 7):
        acc.add(tile_sum(part))
    assert acc.totals()[0] == math.fsum(x)


def test_percentile_stretch_on_real_dem(tmp_path):
    path = data_path("dem", "lidar_TM1_564_146_nodata.tif")
    dem = tw.open(path)
    lo, hi = tw.percentile(dem, [2, 98])
    stretched = tw.map(lambda x, lo, hi: np.nan_to_num(255 * np.clip((x - lo) / (hi - lo), 0, 1)),
                       dem, lo=lo, hi=hi, dtype="uint8")
    tw.save(stretched, tmp_path / "s.tif", tile=128, workers=2)
    import rasterio

    with rasterio.open(path) as ds:
        whole = ds.read(1)
    p2, p98 = np.nanpercentile(whole, [2, 98])
    with np.errstate(invalid="ignore"):
        expected = np.nan_to_num(255 * np.clip((whole - p2) / (p98 - p2), 0, 1)).astype("uint8")
    with rasterio.open(tmp_path / "s.tif") as ds:
        np.testing.assert_array_equal(ds.read(1), expected)
