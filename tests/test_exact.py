"""Tiled equals whole-array bit for bit: shapes, margins, tiles, dtypes, executors."""

import numpy as np
import pytest
import zarr
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opslib import correlate, median, minimum, shift_sum, sobels

import tilewise as tw

DTYPES = ["uint8", "int16", "float32", "float64"]
SETTINGS = settings(max_examples=40, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def make(shape, dtype, seed=0):
    rng = np.random.default_rng(seed)
    if np.dtype(dtype).kind == "f":
        return (rng.integers(-1000, 1000, shape) / 8).astype(dtype)
    info = np.iinfo(dtype)
    return rng.integers(max(info.min, -1000), min(info.max, 1000), shape).astype(dtype)


@st.composite
def cases(draw, ndim=2):
    shape = tuple(draw(st.integers(1, 48)) for _ in range(ndim))
    tile = tuple(draw(st.integers(1, n + 2)) for n in shape)
    r1 = draw(st.integers(0, 12))
    r2 = draw(st.integers(0, 6))
    dtype = draw(st.sampled_from(DTYPES))
    return shape, tile, r1, r2, dtype


def reference_chain(a, r1, r2):
    s = correlate(a, radius=r1).astype(a.dtype)
    return minimum(s, radius=r2)


def tiled_chain(img, r1, r2):
    s = tw.map(correlate, img, margin=r1, radius=r1)
    return tw.map(minimum, s, margin=r2, radius=r2)


@SETTINGS
@given(cases(ndim=2), st.sampled_from(["serial", "threads"]))
def test_chain_2d(case, executor):
    shape, tile, r1, r2, dtype = case
    a = make(shape, dtype)
    got = tiled_chain(tw.open(a), r1, r2).compute(executor=executor, workers=2, tile=tile)
    np.testing.assert_array_equal(got, reference_chain(a, r1, r2), strict=True)


@SETTINGS
@given(cases(ndim=3))
def test_chain_3d_zyx(case):
    shape, tile, r1, r2, dtype = case
    a = make(shape, dtype, seed=1)
    img = tw.open(a, axes="zyx")
    got = tiled_chain(img, min(r1, 3), r2).compute(executor="threads", tile=tile)
    np.testing.assert_array_equal(got, reference_chain(a, min(r1, 3), r2), strict=True)


@settings(max_examples=20, deadline=None)
@given(st.integers(1, 5), st.integers(2, 40), st.integers(2, 40), st.integers(1, 9),
       st.integers(0, 4))
def test_channel_axis_is_never_split(bands, h, w, t, radius):
    """A filter across bands is exact because every tile holds all bands."""
    a = make((bands, h, w), "int16", seed=2)
    img = tw.open(a, axes="cyx")
    got = tw.map(correlate, img, margin=radius, radius=radius).compute(tile=t)
    expected = correlate(a, radius=radius).astype("int16")
    np.testing.assert_array_equal(got, expected, strict=True)


@settings(max_examples=15, deadline=None)
@given(st.integers(1, 6), st.integers(1, 12), st.data())
def test_five_axes_with_per_axis_margins(t, z, data):
    shape = (t, 2, z, data.draw(st.integers(3, 20)), data.draw(st.integers(3, 20)))
    margin = {"t": data.draw(st.integers(0, 2)), "z": data.draw(st.integers(0, 2)),
              "y": data.draw(st.integers(0, 3)), "x": data.draw(st.integers(0, 3))}
    tile = {"t": data.draw(st.integers(1, t)), "z": data.draw(st.integers(1, z)),
            "y": data.draw(st.integers(1, 20)), "x": data.draw(st.integers(1, 20))}
    a = make(shape, "float32", seed=3)

    def med(x):
        size = [2 * margin.get(ax, 0) + 1 for ax in "tczyx"]
        size[1] = 1
        from scipy import ndimage
        return ndimage.median_filter(x, size=size, mode="mirror")

    got = tw.map(med, tw.open(a, axes="tczyx"), margin=margin).compute(tile=tile)
    np.testing.assert_array_equal(got, med(a), strict=True)


@settings(max_examples=25, deadline=None)
@given(st.integers(3, 60), st.integers(3, 60), st.integers(1, 30), st.integers(0, 5))
def test_multi_output_branching_multi_input_one_pass(tmp_path_factory, h, w, t, r):
    """Two outputs of a branching, merging pipeline, written in one save, to npy and zarr."""
    out = tmp_path_factory.mktemp("out")
    a = make((h, w), "int16", seed=4)
    img = tw.open(a)
    s = tw.map(correlate, img, margin=r, radius=r)
    gy, gx = tw.map(sobels, s, margin=1, dtype="float32", outputs=2)
    merged = tw.map(shift_sum, gx, tw.map(median, img, margin=2, radius=2), dtype="float64")
    tw.save([gy, merged], [out / "gy.npy", out / "merged.zarr"], tile=t, workers=2)
    ref_s = correlate(a, radius=r).astype("int16")
    ref_gy, ref_gx = (x.astype("float32") for x in sobels(ref_s))
    ref_merged = shift_sum(ref_gx, median(a, radius=2))
    np.testing.assert_array_equal(np.load(out / "gy.npy"), ref_gy, strict=True)
    np.testing.assert_array_equal(zarr.open_array(out / "merged.zarr")[:], ref_merged,
                                  strict=True)


@settings(max_examples=6, deadline=None)
@given(cases(ndim=2))
def test_processes_executor(case):
    shape, tile, r1, r2, dtype = case
    a = make(shape, dtype, seed=5)
    got = tiled_chain(tw.open(a), r1, r2).compute(executor="processes", workers=2, tile=tile)
    np.testing.assert_array_equal(got, reference_chain(a, r1, r2), strict=True)


def test_decorated_ops_run_in_processes(tmp_path):
    from opslib import grad, smooth

    a = make((70, 90), "float32", seed=6)
    gy, gx = grad(smooth(tw.open(a), radius=4))
    tw.save([gy, gx], [tmp_path / "gy.npy", tmp_path / "gx.zarr"], executor="processes",
            workers=2, tile=32)
    ref = sobels(correlate(a, radius=4).astype("float32"))
    np.testing.assert_array_equal(np.load(tmp_path / "gy.npy"), ref[0].astype("float32"))
    np.testing.assert_array_equal(zarr.open_array(tmp_path / "gx.zarr")[:],
                                  ref[1].astype("float32"))


@pytest.mark.parametrize("executor", ["serial", "threads", "processes"])
def test_margin_larger_than_image_sees_whole_image(executor):
    a = make((9, 11), "float64", seed=7)
    got = tw.map(correlate, tw.open(a), margin=50, radius=3).compute(executor=executor, tile=2)
    np.testing.assert_array_equal(got, correlate(a, radius=3), strict=True)
