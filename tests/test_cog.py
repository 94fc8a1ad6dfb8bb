"""Cloud Optimized GeoTIFFs: valid for GDAL's rules, overviews equal to a whole-array pyramid."""

import signal
import time
import warnings

import numpy as np
import pytest
import rasterio
from conftest import data_path, launch_child, tiles_journaled
from hypothesis import given
from hypothesis import strategies as st
from rio_cogeo.cogeo import cog_validate

import tilewise as tw
from tilewise.io import sink_class
from tilewise.io.cog import COGSink, halve
from tilewise.io.geotiff import GeoTIFFSink


def reference_level(a, method, nodata):
    """The next level of the documented pyramid, by whole-array NumPy: ceil(n / 2) pixels per
    axis, pixel o from the 2 x 2 block at 2o (cut at an odd end); 'nearest' its first pixel,
    'average' the float64 mean of its values other than NaN and nodata, rounded half up for
    integers, nodata (or NaN) when none is left."""
    if method == "nearest":
        return a[..., ::2, ::2]
    h, w = a.shape[-2:]
    padded = np.full((*a.shape[:-2], h + h % 2, w + w % 2), np.nan)
    padded[..., :h, :w] = a
    if nodata is not None:
        padded[padded == nodata] = np.nan
    blocks = padded.reshape(*a.shape[:-2], padded.shape[-2] // 2, 2, padded.shape[-1] // 2, 2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # blocks with nothing left: NaN
        mean = np.nanmean(blocks, axis=(-3, -1))
    if a.dtype.kind in "iu":
        mean = np.floor(mean + 0.5)
    if nodata is not None:
        mean[np.isnan(mean)] = nodata
    return mean.astype(a.dtype)


def reference_pyramid(a, method, nodata=None):
    levels = []
    while max(a.shape[-2:]) > 512:
        a = reference_level(a, method, nodata)
        levels.append(a)
    return levels


def overviews(path):
    """Every overview level of a GeoTIFF, read from its own IFD (no resampling by GDAL)."""
    with rasterio.open(path) as ds:
        count = len(ds.overviews(1))
    out = []
    for i in range(count):
        with rasterio.open(path, OVERVIEW_LEVEL=i) as ds:
            out.append(ds.read() if ds.count > 1 else ds.read(1))
    return out


def assert_valid_cog(path):
    assert cog_validate(str(path), quiet=True) == (True, [], [])


@pytest.mark.parametrize("shape,tile", [((1100, 1537), 256), ((2049, 700), 512),
                                        ((600, 5000), 1024)])
def test_float_overviews_average_nan_skipped_bit_for_bit(tmp_path, shape, tile):
    rng = np.random.default_rng(sum(shape))
    a = rng.normal(100, 30, size=shape).astype("float32")
    a[50:300, 70:411] = np.nan          # whole 2 x 2 blocks and partial ones of NaN
    a[rng.random(shape) < 0.1] = np.nan
    out = tmp_path / "a.cog.tif"
    tw.save(tw.open(a), out, tile=tile)
    assert_valid_cog(out)
    np.testing.assert_array_equal(tw.open(out).compute(), a, strict=True)
    got, want = overviews(out), reference_pyramid(a, "average")
    assert len(got) == len(want) > 0
    for g, w in zip(got, want, strict=True):
        np.testing.assert_array_equal(g, w, strict=True)


def test_integer_outputs_default_to_nearest_and_keep_their_nodata(tmp_path):
    a = np.random.default_rng(1).integers(-5, 9, size=(1301, 1799)).astype("int16")
    image = tw.open(a)
    labels = tw.map(lambda x: x, image, meta={"nodata": -5})
    out = tmp_path / "labels.cog.tif"
    tw.save(labels, out, tile=384)
    assert_valid_cog(out)
    got = overviews(out)
    assert [g.shape for g in got] == [(651, 900), (326, 450)]
    for k, g in enumerate(got, start=1):
        np.testing.assert_array_equal(g, a[::2 ** k, ::2 ** k], strict=True)
    with rasterio.open(out) as ds:
        assert ds.nodata == -5


def test_integer_average_skips_nodata_and_rounds_half_up(tmp_path):
    rng = np.random.default_rng(2)
    a = rng.integers(0, 200, size=(1500, 1025)).astype("uint8")
    a[rng.random(a.shape) < 0.3] = 255
    a[:40, :40] = 255                     # blocks with nothing left stay nodata
    avg = tw.map(lambda x: x, tw.open(a), meta={"nodata": 255, "overviews": "average"})
    out = tmp_path / "avg.cog.tif"
    tw.save(avg, out, tile=512)
    assert_valid_cog(out)
    want = reference_pyramid(a, "average", nodata=255)
    for g, w in zip(overviews(out), want, strict=True):
        np.testing.assert_array_equal(g, w, strict=True)
    assert (want[0][:20, :20] == 255).all() and (want[0] != 255).any()


def test_multiband_georeferenced_cog_keeps_crs_transform_and_band_names(tmp_path):
    from affine import Affine

    rng = np.random.default_rng(3)
    a = rng.random((3, 1200, 900)).astype("float32")
    meta = {"crs": "EPSG:32633", "transform": Affine(30, 0, 500000, 0, -30, 4e6),
            "band_names": ["r", "g", "b"]}
    out = tmp_path / "rgb.cog.tif"
    tw.save(tw.map(lambda x: x, tw.open(a, axes="cyx"), meta=meta), out, tile=256)
    assert_valid_cog(out)
    with rasterio.open(out) as ds:
        assert ds.crs.to_epsg() == 32633 and ds.transform == meta["transform"]
        assert ds.descriptions == ("r", "g", "b")
        np.testing.assert_array_equal(ds.read(), a, strict=True)
    for g, w in zip(overviews(out), reference_pyramid(a, "average"), strict=True):
        np.testing.assert_array_equal(g, w, strict=True)


def test_real_srtm_as_cog(tmp_path):
    dem = tw.open(data_path("dem", "srtm90.tif"))
    whole = dem.compute()
    out = tmp_path / "dem.cog.tif"
    smooth = tw.map(lambda a: a.astype("float32"), dem, dtype="float32")
    tw.save([dem, smooth], [out, tmp_path / "demf.cog.tif"], tile=512)
    for path in (out, tmp_path / "demf.cog.tif"):
        assert_valid_cog(path)
    assert tw.open(out).meta["transform"] == dem.meta["transform"]
    np.testing.assert_array_equal(tw.open(out).compute(), whole, strict=True)
    nearest, average = overviews(out), overviews(tmp_path / "demf.cog.tif")
    assert [o.shape for o in nearest] == [(1233, 2135), (617, 1068), (309, 534), (155, 267)]
    for k, got in enumerate(nearest, start=1):
        np.testing.assert_array_equal(got, whole[::2 ** k, ::2 ** k], strict=True)
    for got, want in zip(average, reference_pyramid(whole.astype("float32"), "average",
                                                    dem.meta["nodata"]), strict=True):
        np.testing.assert_array_equal(got, want, strict=True)


@given(st.integers(1, 70), st.integers(1, 70), st.sampled_from(["float32", "int16", "float64"]),
       st.sampled_from(["average", "nearest"]), st.integers(0, 2**32 - 1))
def test_halving_equals_the_whole_array_reference(h, w, dtype, method, seed):
    rng = np.random.default_rng(seed)
    a = (rng.normal(0, 1000, (2, h, w))).astype(dtype)
    nodata = None if dtype == "float64" else -1
    a[rng.random(a.shape) < 0.3] = np.nan if dtype == "float64" else -1
    want = reference_level(a, method, nodata)
    got = halve(a, method, nodata)
    if dtype == "float64" and method == "average":
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-11)  # summed in another order
    else:
        np.testing.assert_array_equal(got, want, strict=True)


def test_small_image_is_a_cog_without_overviews(tmp_path):
    a = np.arange(300 * 500, dtype="float32").reshape(300, 500)
    out = tmp_path / "small.cog.tif"
    tw.save(tw.open(a), out)
    assert_valid_cog(out)
    assert overviews(out) == []


def test_cog_suffix_selects_the_cog_sink_and_plain_tif_is_unchanged(tmp_path):
    assert sink_class("/x/a.COG.TIF") is COGSink and sink_class("/x/a.cog.tiff") is COGSink
    assert sink_class("/x/a.tif") is GeoTIFFSink and sink_class("/x/cog.tif") is GeoTIFFSink
    a = np.random.default_rng(4).random((1100, 1100)).astype("float32")
    plain = tmp_path / "plain.tif"
    tw.save(tw.open(a), plain, tile=512)
    with rasterio.open(plain) as ds:
        assert ds.overviews(1) == [] and ds.block_shapes == [(512, 512)]
        assert ds.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") != "COG"
    with rasterio.open(tmp_path / "plain.tif") as ds:
        np.testing.assert_array_equal(ds.read(1), a)


def test_unknown_overview_method_is_refused_before_any_work(tmp_path):
    image = tw.map(lambda x: x, tw.open(np.ones((600, 600))), meta={"overviews": "cubic"})
    with pytest.raises(tw.ParameterError, match=r"a\.cog\.tif: overviews must be one of "
                                                r"average, nearest, not 'cubic'"):
        tw.save(image, tmp_path / "a.cog.tif")
    assert list(tmp_path.iterdir()) == []


CHILD = """
import sys, time
import numpy as np
import tilewise as tw

def slow(a):
    time.sleep(0.03)
    return a.astype("float32")

if __name__ == "__main__":
    dem = tw.open(sys.argv[1])
    tw.save([dem, tw.map(slow, dem, dtype="float32")], ["dem.cog.tif", "demf.cog.tif"],
            tile=256, workers=2, progress=False)
"""




def test_killed_cog_run_resumes_to_the_same_pixels_and_overviews(tmp_path):
    dem = data_path("dem", "srtm90.tif")
    runs = {}
    for name in ("reference", "killed"):
        folder = tmp_path / name
        folder.mkdir()
        (folder / "child.py").write_text(CHILD)
        runs[name] = folder
    assert launch_child(runs["reference"], dem).wait(300) == 0
    folder = runs["killed"]
    log = folder / "demf.cog.tif.journal"
    # Killed after some tiles, after more, then once every tile is journaled (while the COG
    # is being assembled), then run to the end.
    for target in (30, 90, 170):
        proc = launch_child(folder, dem)
        while tiles_journaled(log) < target and proc.poll() is None:
            time.sleep(0.005)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert not (folder / "demf.cog.tif").exists() or target == 170
    final = launch_child(folder, dem)
    assert final.wait(300) == 0, final.stderr.read()
    assert log.read_text().count('{"run": ') == 4  # every launch started, three were killed
    for name in ("dem.cog.tif", "demf.cog.tif"):
        assert_valid_cog(folder / name)
        a, b = runs["reference"] / name, folder / name
        np.testing.assert_array_equal(tw.open(a).compute(), tw.open(b).compute(), strict=True)
        for x, y in zip(overviews(a), overviews(b), strict=True):
            np.testing.assert_array_equal(x, y, strict=True)
