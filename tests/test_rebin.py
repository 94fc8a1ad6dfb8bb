"""`rebin`: blocks of pixels reduced to one, tile by tile, bit for bit the whole array's result.

The reference (`reference` below) is the definition of a block's value: one NumPy call
(`nansum`, `nanmean`, `nanmin`, `nanmax`, `nanmedian`) on that block's pixels in C order, made
on the whole array at once by laying every block out along a last axis. It is right because
(1) it equals that call made block by block in a Python loop (tested below) and (2) it does not
depend on the array's extent. NumPy's other reshape-reduce, `a.reshape(H, fy, W, fx)` reduced
over axes (1, 3), does: NumPy merges axes of length 1 before reducing, so a float block's sum
is added up in a different order in an image one block wide than in a wider one, and that form
cannot be the reference of anything computed in pieces (not even of a crop of the array).
"""

import os
import re
import subprocess
import sys
import textwrap
import warnings
from fractions import Fraction

import numpy as np
import pytest
import zarr
from conftest import data_path
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tilewise as tw
from tilewise import library as ops
from tilewise import meta as metadata
from tilewise import spec
from tilewise.library.resample import output_dtype

HOWS = ["sum", "mean", "min", "max", "median"]
SETTINGS = settings(max_examples=60, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow,
                                           HealthCheck.function_scoped_fixture])


def same(a):
    return a


def with_meta(array, axes=None, **meta):
    """An in-memory image with metadata (an in-memory array has none of its own)."""
    return tw.map(same, tw.open(array, axes=axes), meta=meta)


def reference(a, factors, how, nodata=None):
    """Each block of `a` (partial blocks at the ends dropped) reduced by one NumPy call on its
    pixels in C order; NaN and `nodata` skipped; dtypes as documented in docs/rebin.md."""
    counts = [n // f for n, f in zip(a.shape, factors, strict=True)]
    a = a[tuple(slice(0, c * f) for c, f in zip(counts, factors, strict=True))]
    split = a.reshape([x for pair in zip(counts, factors, strict=True) for x in pair])
    order = [*range(0, 2 * a.ndim, 2), *range(1, 2 * a.ndim, 2)]
    # Contiguous: a strided view (which reshape may return) is summed in another order.
    b = np.ascontiguousarray(split.transpose(order)).reshape(*counts, -1)
    holes = np.isnan(b) if b.dtype.kind == "f" else np.zeros(b.shape, bool)
    if nodata is not None:
        holes |= b == nodata
    empty = holes.all(axis=-1)
    if b.dtype.kind in "iub" and how in ("min", "max", "sum"):
        masked = np.ma.masked_array(b, holes)
        if how == "sum":
            wide = "uint64" if b.dtype.kind == "u" else "int64"
            return masked.sum(axis=-1, dtype=wide).filled(0).astype(wide)
        return getattr(masked, how)(axis=-1).filled(nodata if nodata is not None else 0)
    dtype = {"sum": "float64", "min": b.dtype, "max": b.dtype}.get(
        how, "float32" if b.dtype in (np.float16, np.float32) else "float64")
    x = np.where(holes, np.nan, b.astype(dtype))
    out = quietly(getattr(np, f"nan{how}"), x, axis=-1)
    if how == "sum":
        out[empty] = np.nan
    return out


def quietly(func, *args, **kwargs):
    """`func` without NumPy's warnings on blocks with no valid pixel."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return func(*args, **kwargs)


def holey(shape, dtype, seed, nan_fraction=0.1):
    rng = np.random.default_rng(seed)
    a = rng.normal(100, 50, shape)
    if np.dtype(dtype).kind == "f":
        a[rng.random(shape) < nan_fraction] = np.nan
        return (a * 1.37).astype(dtype)
    return np.clip(a, 0, 255).astype(dtype)


@pytest.mark.parametrize("how", HOWS)
def test_the_reference_is_each_blocks_own_numpy_call(how):
    a = holey((12, 20), "float32", seed=1, nan_fraction=0.3)
    a[:4, :5] = np.nan                                     # one block with no valid pixel
    ref = reference(a, (4, 5), how)
    expected = np.empty_like(ref)
    for i in range(3):
        for j in range(4):
            block = a[4 * i:4 * i + 4, 5 * j:5 * j + 5].ravel()
            dtype = "float64" if how == "sum" else "float32"
            expected[i, j] = quietly(getattr(np, f"nan{how}"), block.astype(dtype))
    expected[0, 0] = np.nan                                 # nansum of nothing would be 0
    np.testing.assert_array_equal(ref, expected, strict=True)


@pytest.mark.parametrize("how, expected", [
    ("sum", [[12, 3, 0]]), ("mean", [[3.0, 3.0, np.nan]]), ("median", [[3.0, 3.0, np.nan]]),
    ("min", [[1, 3, -9]]), ("max", [[5, 3, -9]]),
])
def test_hand_computed_blocks(how, expected):
    """Blocks {1, 2, 4, 5}, {3} once nodata is skipped, and nothing valid at all."""
    a = np.array([[1, 2, 3, -9, -9, -9], [4, 5, -9, -9, -9, -9]], "int16")
    got = ops.rebin(with_meta(a, nodata=-9), factors=2, how=how).compute(tile=1)
    np.testing.assert_array_equal(got, np.array(expected, output_dtype(a.dtype, how)),
                                  strict=True)


@SETTINGS
@given(st.data())
def test_tiled_equals_the_whole_array(data):
    ndim = data.draw(st.sampled_from([2, 3]), "ndim")
    dtype = data.draw(st.sampled_from(["float32", "float64", "int16", "uint8"]), "dtype")
    how = data.draw(st.sampled_from(HOWS), "how")
    trim = data.draw(st.booleans(), "trim")
    factors = data.draw(st.lists(st.sampled_from([1, 2, 3, 5, -1]), min_size=ndim,
                                 max_size=ndim), "factors")
    shape = [f * data.draw(st.integers(1, 8)) if f != -1 else data.draw(st.integers(1, 12))
             for f in factors]
    if trim:
        shape = [n + data.draw(st.integers(0, f - 1)) if f > 1 else n
                 for n, f in zip(shape, factors, strict=True)]
    a = holey(tuple(shape), dtype, seed=data.draw(st.integers(0, 99)))
    nodata = data.draw(st.sampled_from([None, a.flat[0]]), "nodata")
    axes = "zyx"[-ndim:]
    img = with_meta(a, axes, nodata=None if nodata is None else float(nodata))
    rebinned = ops.rebin(img, factors=dict(zip(axes, factors, strict=True)), how=how,
                         trim=trim)
    tile = data.draw(st.lists(st.integers(1, 4), min_size=ndim, max_size=ndim), "tile")
    executor = data.draw(st.sampled_from(["serial", "threads"]), "executor")
    got = rebinned.compute(executor=executor, workers=2, tile=tile)
    whole = [n if f == -1 else f for n, f in zip(shape, factors, strict=True)]
    np.testing.assert_array_equal(got, reference(a, whole, how, nodata), strict=True)


def test_processes_give_the_same_result():
    a = holey((30, 42), "float32", seed=3)
    rebinned = ops.rebin(tw.open(a), factors=3, how="mean")
    got = rebinned.compute(executor="processes", workers=2, tile=4)
    np.testing.assert_array_equal(got, reference(a, (3, 3), "mean"), strict=True)


@pytest.fixture(scope="module")
def srtm():
    return tw.open(data_path("dem", "srtm90.tif"))


@pytest.mark.parametrize("how", HOWS)
def test_srtm_int16_with_trim(srtm, how):
    """2465 = 5 x 493 rows; 4269 columns leave 1 over after blocks of 4."""
    a = srtm.compute()
    rebinned = ops.rebin(srtm, factors={"y": 5, "x": 4}, how=how, trim=True)
    assert rebinned.shape == (493, 1067)
    expected = reference(a, (5, 4), how)
    for tile in ({"y": 100, "x": 300}, 493, {"y": 7, "x": 1067}):
        got = rebinned.compute(tile=tile, workers=2)
        np.testing.assert_array_equal(got, expected, strict=True)
    transform = rebinned.meta["transform"]
    assert (transform.a, transform.e) == (srtm.meta["transform"].a * 4,
                                          srtm.meta["transform"].e * 5)
    assert transform.c == srtm.meta["transform"].c and transform.f == srtm.meta["transform"].f


def lowlands(a):
    return np.where(a < 1500, -32768, a)


@pytest.mark.parametrize("how", HOWS)
def test_srtm_nodata_is_skipped(srtm, how):
    """Below 1500 m is marked nodata: whole blocks of it have no valid pixel."""
    marked = tw.map(lowlands, srtm, meta={"nodata": -32768})
    rebinned = ops.rebin(marked, factors=16, how=how, trim=True)
    a = lowlands(srtm.compute())
    expected = reference(a, (16, 16), how, nodata=-32768)
    got = rebinned.compute(tile=37, executor="threads", workers=2)
    np.testing.assert_array_equal(got, expected, strict=True)
    counts = reference((a != -32768).astype("int64"), (16, 16), "sum")
    assert (counts == 0).any() and (counts == 256).any() and ((counts % 256) != 0).any()
    nodata = rebinned.meta["nodata"]
    if how in ("mean", "median"):
        assert np.isnan(nodata)                     # float output: NaN marks empty blocks
    else:                                           # min, max: the input's; sum: none
        assert nodata == {"sum": None}.get(how, -32768)


def test_whole_axis():
    a = holey((6, 10, 14), "float64", seed=4)
    rebinned = ops.rebin(tw.open(a), factors={"z": -1, "x": 7}, how="median")
    assert rebinned.shape == (1, 10, 2)
    np.testing.assert_array_equal(rebinned.compute(tile=(1, 3, 1)),
                                  reference(a, (6, 1, 7), "median"), strict=True)


def test_factors_that_do_not_divide_are_refused(srtm):
    with pytest.raises(tw.ParameterError, match=r"factor 4 of op 'rebin' does not divide axis "
                                                r"'x' of length 4269 \(1 pixel\(s\) left over\)"
                                                r"; pass trim=True"):
        ops.rebin(srtm, factors={"y": 5, "x": 4})


@pytest.mark.parametrize("factors, message", [
    ({"y": 0}, "along 'y' must be a positive integer or -1"),
    ({"y": 2.0}, "along 'y' must be a positive integer or -1"),
    ({"y": True}, "along 'y' must be a positive integer or -1"),
    ({"t": 2}, "name axis 't', not one of the image's axes"),
    ({"x": 11}, "factor 11 of op 'rebin' along 'x' is longer than the axis"),
])
def test_bad_factors(factors, message):
    with pytest.raises(tw.ParameterError, match=message):
        ops.rebin(tw.open(np.zeros((4, 10))), factors=factors, trim=True)


def test_bad_how():
    with pytest.raises(tw.ParameterError, match="how='mode' of op 'rebin' must be one of"):
        ops.rebin(tw.open(np.zeros((4, 4))), factors=2, how="mode")


@pytest.mark.parametrize("dtype, how, expected", [
    ("int16", "sum", "int64"), ("uint8", "sum", "uint64"), ("bool", "sum", "int64"),
    ("float32", "sum", "float64"), ("int16", "mean", "float64"), ("float32", "mean", "float32"),
    ("float16", "median", "float32"), ("float64", "median", "float64"),
    ("uint16", "min", "uint16"), ("float32", "max", "float32"),
])
def test_output_dtypes(dtype, how, expected):
    a = (np.arange(16) % 3).reshape(4, 4).astype(dtype)
    rebinned = ops.rebin(tw.open(a), factors=2, how=how)
    assert rebinned.dtype == np.dtype(expected)
    np.testing.assert_array_equal(rebinned.compute(), reference(a, (2, 2), how), strict=True)


# --- the WCS of a spectral cube ---------------------------------------------------------------

@pytest.fixture(scope="module")
def l1448():
    fits = pytest.importorskip("astropy.io.fits")
    from astropy.wcs import WCS

    with fits.open(data_path("astronomy", "l1448_13co.fits")) as hdus:
        cube = hdus[0].data.astype("float32")
        wcs = WCS(hdus[0].header)
    cube[np.random.default_rng(5).random(cube.shape) < 0.01] = np.nan
    cube[:, :5, :5] = np.nan                         # a block with no valid pixel
    return cube, wcs


def pixels(shape):
    """The pixel indices of an image of NumPy `shape`, one array per WCS axis (FITS order)."""
    return np.indices(shape)[::-1]


def world(wcs, shape):
    return wcs.pixel_to_world_values(*pixels(shape))


def intermediate(wcs, shape):
    """Intermediate world coordinates (before the projection): linear in the pixels."""
    flat = pixels(shape).reshape(len(shape), -1).T
    return wcs.wcs.p2s(flat, 0)["imgcrd"].T.reshape(len(shape), *shape)


def assert_block_centres(old, new, shape, factors):
    """New pixel p along an axis covers old pixels [p*f, (p+1)*f): its centre is old pixel
    p*f + (f-1)/2, the mean of the block's old centres. Checked three ways:
    - the linear part (intermediate coordinates) is the mean of the block's, to 1e-9;
    - world coordinates are the old WCS's at p*f + (f-1)/2, to rounding;
    - world coordinates are the mean of the block's old ones, to 1e-9, on axes that are not
      celestial (the spectral one). On celestial axes that mean is not the centre's: the
      projection curves, and the mean of a block's right ascensions is off the centre's by
      2.8e-9 (relative) for 5 x 5 blocks of the L1448 cube and 2.6e-8 for 15 x 1, growing
      with the block's area; the first two checks are the exact statement there.
    """
    new_shape = reference(np.zeros(shape), factors, "sum").shape
    linear = [reference(w, factors, "mean") for w in intermediate(old, shape)]
    np.testing.assert_allclose(intermediate(new, new_shape), linear, rtol=1e-9, atol=1e-12)
    centres = [p * f + (f - 1) / 2 for p, f in zip(pixels(new_shape), factors[::-1],
                                                  strict=True)]
    got = world(new, new_shape)
    np.testing.assert_allclose(got, old.pixel_to_world_values(*centres), rtol=1e-12)
    for axis, values in enumerate(world(old, shape)):
        if axis not in (old.wcs.lng, old.wcs.lat):
            np.testing.assert_allclose(got[axis], reference(values, factors, "mean"),
                                       rtol=1e-9, err_msg=f"world axis {axis}")


@pytest.mark.parametrize("how", HOWS)
def test_l1448_cube_tiled_equals_whole(l1448, how):
    cube, wcs = l1448
    img = with_meta(cube, "zyx", wcs=wcs)
    rebinned = ops.rebin(img, factors={"z": 1, "y": 5, "x": 5}, how=how)
    assert rebinned.shape == (53, 21, 21)
    expected = reference(cube, (1, 5, 5), how)
    for tile in ((1, 21, 21), (7, 4, 3), {"z": 53, "y": 1, "x": 21}):
        got = rebinned.compute(tile=tile, executor="threads", workers=2)
        np.testing.assert_array_equal(got, expected, strict=True)


@pytest.mark.parametrize("factors, trim", [
    ({"z": 1, "y": 5, "x": 5}, False),
    ({"z": 1, "y": 7, "x": 3}, False),              # y and x differ: a swap would show
    ({"z": 4, "y": 5, "x": 5}, True),               # spectral blocks too; 53 = 13 x 4 + 1
    ({"z": -1, "y": 15, "x": 1}, False),
])
def test_l1448_wcs_rescaled(l1448, factors, trim):
    cube, wcs = l1448
    rebinned = ops.rebin(with_meta(cube, "zyx", wcs=wcs), factors=factors, trim=trim)
    sizes = [cube.shape[i] if f == -1 else f for i, f in enumerate(factors.values())]
    assert_block_centres(wcs, rebinned.meta["wcs"], cube.shape, sizes)
    assert rebinned.meta["wcs"].pixel_shape is None
    assert wcs.wcs.crpix.tolist() == [-799.0, -4741.913, -187.0]   # the input's is untouched


def test_l1448_window_then_rebin(l1448):
    """A lazy window shifts the WCS; the rebinning then rescales the shifted one."""
    cube, wcs = l1448
    window = with_meta(cube, "zyx", wcs=wcs)[3:43, 10:100, 6:102]
    rebinned = ops.rebin(window, factors={"z": 2, "y": 3, "x": 4})
    inner = np.indices(window.shape)[::-1]
    np.testing.assert_allclose(
        window.meta["wcs"].pixel_to_world_values(*inner),
        wcs.pixel_to_world_values(inner[0] + 6, inner[1] + 10, inner[2] + 3), rtol=1e-12)
    assert_block_centres(window.meta["wcs"], rebinned.meta["wcs"], window.shape, (2, 3, 4))


def test_l1448_to_zarr_keeps_the_wcs(l1448, tmp_path):
    cube, wcs = l1448
    rebinned = ops.rebin(with_meta(cube, "zyx", wcs=wcs), factors={"y": 5, "x": 5})
    tw.save(rebinned, tmp_path / "small.zarr", tile=(10, 7, 7))
    back = tw.open(tmp_path / "small.zarr")
    assert back.axes == ("z", "y", "x")
    np.testing.assert_array_equal(back.compute(), reference(cube, (1, 5, 5), "mean"))
    assert_block_centres(wcs, back.meta["wcs"], cube.shape, (1, 5, 5))


def celestial(cd=None, pc=None):
    w = pytest.importorskip("astropy.wcs").WCS(naxis=2)
    w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    w.wcs.crval = [150.0, 2.0]
    w.wcs.crpix = [17.3, -4.5]
    if cd is not None:
        w.wcs.cd = cd
    else:
        w.wcs.cdelt = [-1e-4, 2e-4]
        w.wcs.pc = pc
    return w


@pytest.mark.parametrize("matrix", [
    {"cd": [[-1e-4, 3e-5], [2e-5, 1.5e-4]]},
    {"pc": [[0.8, -0.6], [0.6, 0.8]]},           # rotated: scaling CDELT alone would be wrong
    {"pc": [[1.0, 0.0], [0.0, 1.0]]},
], ids=["cd", "rotated-pc", "diagonal-pc"])
def test_linear_matrices_are_scaled_per_pixel_axis(matrix):
    wcs = celestial(**matrix)
    old = wcs.deepcopy()
    new = metadata.rescaled({"wcs": wcs}, ("y", "x"), {"y": Fraction(3), "x": Fraction(2)})
    assert_block_centres(old, new["wcs"], (30, 40), (3, 2))


def test_a_wcs_with_sip_distortion_is_refused():
    wcs = celestial(cd=[[-1e-4, 0], [0, 1e-4]])
    from astropy.wcs import Sip

    coefficients = np.zeros((3, 3))
    coefficients[2, 0] = 1e-6
    wcs.sip = Sip(coefficients, coefficients, None, None, wcs.wcs.crpix)
    with pytest.raises(tw.ParameterError, match="cannot rescale a WCS with SIP"):
        ops.rebin(with_meta(np.zeros((8, 8)), wcs=wcs), factors=2)


def test_json_round_trip_of_the_wcs(l1448):
    _, wcs = l1448
    back = metadata.from_attrs(metadata.to_attrs({"wcs": wcs}))["wcs"]
    assert list(back.wcs.ctype) == list(wcs.wcs.ctype) and back.wcs.specsys == "LSRK"
    np.testing.assert_allclose(world(back, (3, 4, 5)), world(wcs, (3, 4, 5)), rtol=1e-15)


# --- pipeline files ----------------------------------------------------------------------------

@pytest.mark.parametrize("factors, shape", [("{y: 4, x: 4}", (16, 12)), ("4", (16, 12)),
                                            ("{y: -1}", (1, 48))])
def test_pipeline_file(tmp_path, factors, shape):
    a = holey((64, 48), "float32", seed=6)
    np.save(tmp_path / "a.npy", a)
    (tmp_path / "p.yaml").write_text(textwrap.dedent(f"""\
        inputs: {{a: a.npy}}
        steps:
          small: {{op: rebin, input: a, params: {{factors: {factors}, how: mean}}}}
        outputs: {{small: small.zarr}}
        """))
    loaded = spec.load(tmp_path / "p.yaml")
    tw.save(loaded.images, loaded.paths, tile=5)
    got = zarr.open_array(tmp_path / "small.zarr")[:]
    sizes = [n // m for n, m in zip(a.shape, shape, strict=True)]
    np.testing.assert_array_equal(got, reference(a, sizes, "mean"), strict=True)


def test_pipeline_file_with_a_bad_factor(tmp_path):
    np.save(tmp_path / "a.npy", np.zeros((8, 8)))
    (tmp_path / "p.yaml").write_text(
        "inputs: {a: a.npy}\nsteps:\n  s:\n    op: rebin\n    input: a\n"
        "    params: {factors: {y: big}}\noutputs: {s: o.npy}\n")
    with pytest.raises(tw.PipelineFileError, match=r"line 6: steps\.s\.params\.factors: must be"):
        spec.load(tmp_path / "p.yaml")


def test_the_example_runs(tmp_path):
    pytest.importorskip("astropy")
    cube = data_path("astronomy", "l1448_13co.fits")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = tmp_path / "l1448.zarr"
    done = subprocess.run([sys.executable, os.path.join(root, "examples", "l1448_rebin.py"),
                           cube, str(out)], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": os.path.join(root, "src")})
    assert done.returncode == 0, done.stderr
    assert "(53, 105, 105) -> (53, 21, 21) float32" in done.stdout
    assert tw.open(out).meta["wcs"].wcs.cdelt[0] == pytest.approx(-0.006388889 * 5, rel=1e-12)


def test_the_docs_example_runs(tmp_path, monkeypatch):
    pytest.importorskip("astropy")
    dem, cube = data_path("dem", "srtm90.tif"), data_path("astronomy", "l1448_13co.fits")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    with open(os.path.join(root, "docs", "rebin.md")) as f:
        code = re.search(r"```python\n(.*?)```", f.read(), re.S).group(1)
    code = code.replace("../shared/data/dem/srtm90.tif", dem)
    code = code.replace("../shared/data/astronomy/l1448_13co.fits", cube)
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(code, "docs/rebin.md", "exec"), namespace)
    assert tw.open(tmp_path / "l1448_5x5.zarr").shape == (53, 21, 21)
    assert namespace["spectrum"].shape == (53, 1, 1)


def test_two_images_with_equal_wcs_share_a_grid_and_open_takes_meta():
    """Equal WCSs (different objects) are one grid; `tw.open(array, meta=)` attaches one."""
    astropy_wcs = pytest.importorskip("astropy.wcs")
    wcs = astropy_wcs.WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs.wcs.cdelt = [-0.001, 0.001]
    a = tw.open(np.ones((20, 30)), meta={"wcs": wcs})
    b = tw.open(np.ones((20, 30)), meta={"wcs": wcs.deepcopy()})
    assert tw.map(np.add, a, b).compute()[0, 0] == 2
    other = wcs.deepcopy()
    other.wcs.cdelt = [-0.002, 0.002]
    with pytest.raises(tw.GridMismatchError, match="their wcs differ"):
        tw.map(np.add, a, tw.open(np.ones((20, 30)), meta={"wcs": other}))


def test_physical_spacing_follows_windows_and_rebinning():
    spacing = {"z": {"size": 0.32, "unit": "micrometer", "origin": 0.0},
               "x": {"size": 0.1, "unit": "micrometer", "origin": 5.0}}
    shifted = metadata.sliced({"physical": spacing}, ("z", "y", "x"), (2, 7, 10), None)
    assert shifted["physical"]["z"]["origin"] == pytest.approx(0.64)
    assert shifted["physical"]["x"]["origin"] == pytest.approx(6.0)
    assert "y" not in shifted["physical"]
    halved = metadata.rescaled({"physical": spacing}, ("z", "y", "x"),
                               {"x": Fraction(2), "y": Fraction(2)})["physical"]
    # Pixel 0 of the half-size image averages old pixels 0 and 1: its centre is half way.
    assert halved["x"] == {"size": pytest.approx(0.2), "unit": "micrometer",
                           "origin": pytest.approx(5.05)}
    assert halved["z"] == spacing["z"]
    assert metadata.from_attrs(metadata.to_attrs({"physical": spacing})) == {"physical": spacing}
