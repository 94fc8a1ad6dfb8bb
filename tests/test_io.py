"""Formats: metadata survives, outputs are staged and refused where they must be."""

import os

import numpy as np
import pytest
import rasterio
import zarr
from affine import Affine
from hypothesis import given, settings
from hypothesis import strategies as st
from rasterio.crs import CRS

import tilewise as tw


@pytest.fixture
def geotiff(tmp_path):
    path = tmp_path / "in.tif"
    data = np.arange(3 * 40 * 50, dtype="int16").reshape(3, 40, 50)
    profile = {"driver": "GTiff", "width": 50, "height": 40, "count": 3, "dtype": "int16",
               "crs": "EPSG:32631", "transform": Affine(2, 0, 1000, 0, -2, 5000),
               "nodata": -9999, "tiled": True, "blockxsize": 16, "blockysize": 16}
    with rasterio.open(path, "w", **profile) as ds:
        ds.write(data)
        for i, name in enumerate(["red", "green", "blue"], start=1):
            ds.set_band_description(i, name)
    return path, data


def test_geotiff_source_attributes(geotiff):
    path, data = geotiff
    img = tw.open(path)
    assert img.shape == (3, 40, 50) and img.axes == ("c", "y", "x")
    assert img.dtype == np.int16 and img.blocks == (3, 16, 16)
    assert img.meta["crs"] == CRS.from_epsg(32631)
    assert img.meta["nodata"] == -9999
    assert img.meta["band_names"] == ("red", "green", "blue")
    np.testing.assert_array_equal(img.compute(), data)


def test_lazy_slicing_shifts_the_transform_and_cuts_bands(geotiff):
    path, data = geotiff
    img = tw.open(path)
    part = img[1:, 10:30, 5:]
    assert part.shape == (2, 20, 45)
    assert part.meta["transform"] == Affine(2, 0, 1010, 0, -2, 4980)
    assert part.meta["band_names"] == ("green", "blue")
    np.testing.assert_array_equal(part.compute(), data[1:, 10:30, 5:])
    band = img[2, ..., :-3]
    assert band.axes == ("y", "x") and band.meta["band_names"] is None
    np.testing.assert_array_equal(band.compute(tile=7), data[2, :, :-3])
    assert img[...] is img


@pytest.mark.parametrize("key", [np.s_[::2], np.s_[5:5], np.s_[0, 0, 0, 0], np.s_[7],
                                 np.s_["a"], np.s_[..., ...]])
def test_bad_slices_are_refused(geotiff, key):
    with pytest.raises(tw.ParameterError):
        tw.open(geotiff[0])[key]


def test_geotiff_roundtrip_keeps_georeference(geotiff, tmp_path):
    path, data = geotiff
    out = tmp_path / "out.tif"
    report = tw.save(tw.open(path), out, tile=16, workers=2)
    assert report.tiles == 12 and report.tile == {"c": 3, "y": 16, "x": 16}
    with rasterio.open(path) as a, rasterio.open(out) as b:
        assert (b.crs, b.transform, b.nodata, b.descriptions) == \
            (a.crs, a.transform, a.nodata, a.descriptions)
        assert b.profile["tiled"] and b.block_shapes[0] == (48, 64)
        np.testing.assert_array_equal(b.read(), data)
    assert sorted(os.listdir(tmp_path)) == ["in.tif", "out.tif", "out.tif.journal"]


def test_zarr_roundtrip_keeps_metadata(geotiff, tmp_path):
    path, data = geotiff
    out = tmp_path / "out.zarr"
    tw.save(tw.open(path)[:, 3:, :], out)
    arr = zarr.open_array(out)
    assert arr.metadata.dimension_names == ("c", "y", "x")
    back = tw.open(out)
    assert back.axes == ("c", "y", "x")
    assert back.meta["crs"] == CRS.from_epsg(32631)
    assert back.meta["transform"] == Affine(2, 0, 1000, 0, -2, 4994)
    assert back.meta["band_names"] == ("red", "green", "blue")
    np.testing.assert_array_equal(back.compute(), data[:, 3:, :])


def test_npy_in_and_out(tmp_path):
    a = np.arange(60, dtype="float32").reshape(6, 10)
    np.save(tmp_path / "a.npy", a)
    img = tw.open(tmp_path / "a.npy")
    assert img.axes == ("y", "x")
    tw.save(tw.map(np.negative, img), tmp_path / "b.npy", tile=3)
    np.testing.assert_array_equal(np.load(tmp_path / "b.npy"), -a)


@settings(max_examples=40)
@given(shape=st.lists(st.integers(1, 7), min_size=1, max_size=4), order=st.sampled_from("CF"),
       data=st.data())
def test_npy_windows_are_read_and_written_in_place(tmp_path_factory, shape, order, data):
    """Windows are byte runs of the file (pread/pwrite): any box, either memory order."""
    from tilewise.io.npy import NpySource
    from tilewise.regions import Box

    path = tmp_path_factory.mktemp("npy") / "a.npy"
    a = np.asarray(np.arange(np.prod(shape), dtype="int32").reshape(shape), order=order)
    np.save(path, a)
    start = [data.draw(st.integers(0, n)) for n in shape]
    stop = [data.draw(st.integers(s, n)) for s, n in zip(start, shape, strict=True)]
    box = Box(tuple(start), tuple(stop))
    assert np.array_equal(NpySource.open(str(path), None).read(box), a[box.slices])
    out = tmp_path_factory.mktemp("out") / "b.npy"
    tw.save(tw.open(a), out, tile=data.draw(st.integers(1, 4)))
    assert np.array_equal(np.load(out), a)


def test_reading_an_npy_file_does_not_map_it(tmp_path):
    """Pages of a mapped input count in the run's resident memory: windows are read instead."""
    a = np.ones((2048, 2048), "float32")
    np.save(tmp_path / "a.npy", a)
    assert np.array_equal(tw.open(tmp_path / "a.npy").compute(tile=256), a)
    if not os.path.exists("/proc/self/maps"):
        pytest.skip("no /proc/self/maps on this system to list mapped files")
    with open("/proc/self/maps") as maps:
        assert str(tmp_path / "a.npy") not in maps.read()


def test_nan_nodata_zarr_attributes_roundtrip(tmp_path):
    a = np.full((4, 4), np.nan, "float32")
    img = tw.map(np.asarray, tw.open(a), meta={"nodata": float("nan")})
    tw.save(img, tmp_path / "n.zarr")
    assert np.isnan(tw.open(tmp_path / "n.zarr").meta["nodata"])


@pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")
def test_existing_output_is_refused_then_overwritten(tmp_path):
    img = tw.open(np.ones((8, 8), "uint8"))
    out = tmp_path / "o.tif"
    tw.save(img, out)
    again = tw.save(img, out)  # the journal says it is complete: nothing to do
    assert (again.tiles, again.resumed) == (0, 1)
    with pytest.raises(tw.OutputExistsError, match=r"o\.tif was begun by a different pipeline: "
                                                   r"the steps changed from input array to "
                                                   r"input array -> <lambda>"):
        tw.save(tw.map(lambda a: a * 2, img), out)
    os.remove(str(out) + ".journal")
    with pytest.raises(tw.OutputExistsError, match=r"o\.tif exists; pass overwrite=True"):
        tw.save(img, out)
    tw.save(tw.map(lambda a: a * 2, img), out, overwrite=True)
    with rasterio.open(out) as ds:
        assert (ds.read(1) == 2).all()


def test_output_equal_to_input_is_refused_even_with_overwrite(geotiff):
    path, _ = geotiff
    with pytest.raises(tw.OutputExistsError, match="also an input"):
        tw.save(tw.open(path), path, overwrite=True)


def test_output_equal_to_a_file_read_only_by_a_reduction_is_refused(geotiff, tmp_path):
    path, _ = geotiff
    top = tw.reduce(tw.open(path), "max")
    img = tw.map(lambda a, top: a / top, tw.open(np.ones((3, 40, 50))), top=top)
    with pytest.raises(tw.OutputExistsError, match="also an input"):
        tw.save(img, path, overwrite=True)


def test_unknown_suffixes_and_missing_files(tmp_path):
    with pytest.raises(tw.UnsupportedFormatError, match=r"\.xyz"):
        tw.save(tw.open(np.ones((2, 2))), tmp_path / "a.xyz")
    with pytest.raises(tw.UnsupportedFormatError, match=r"\.xyz"):
        (tmp_path / "b.xyz").write_text("hello")
        tw.open(tmp_path / "b.xyz")
    with pytest.raises(tw.InputError, match=r"nothere\.tif does not exist"):
        tw.open(tmp_path / "nothere.tif")
    with pytest.raises(tw.InputError, match=r"nothere\.zarr does not exist"):
        tw.open(tmp_path / "nothere.zarr")


def test_corrupt_geotiff_is_an_input_error(tmp_path):
    bad = tmp_path / "bad.tif"
    bad.write_bytes(b"II*\x00garbage" * 10)
    with pytest.raises(tw.InputError, match=r"bad\.tif"):
        tw.open(bad)


def test_geotiff_refuses_what_it_cannot_hold(tmp_path):
    with pytest.raises(tw.UnsupportedFormatError, match="axes"):
        tw.save(tw.open(np.ones((2, 3, 4)), axes="zyx"), tmp_path / "a.tif")
    with pytest.raises(tw.UnsupportedFormatError, match="bool"):
        tw.save(tw.open(np.ones((3, 4), bool)), tmp_path / "a.tif")


def test_output_folder_must_exist(tmp_path):
    with pytest.raises(tw.OutputError, match="does not exist"):
        tw.save(tw.open(np.ones((2, 2))), tmp_path / "no" / "a.npy")


def test_failed_run_leaves_nothing_complete_looking_and_resumes(tmp_path):
    broken = {(1, 1)}
    seen = []

    def boom(a, *, tile):
        if tile.probe:
            return a
        seen.append(tile.index)
        if tile.index in broken:
            raise RuntimeError("bad tile")
        return a

    image = tw.map(boom, tw.open(np.ones((8, 8))))
    with pytest.raises(tw.TileError, match=r"op 'boom' on tile \(1, 1\).*RuntimeError: bad tile"):
        tw.save(image, tmp_path / "a.tif", tile=4, executor="serial")
    assert sorted(os.listdir(tmp_path)) == ["a.tif.journal", "a.tif.partial"]
    broken.clear()  # the cause is fixed: the re-run computes only what did not finish
    done_before = set(seen)
    seen.clear()
    report = tw.save(image, tmp_path / "a.tif", tile=4, executor="serial")
    assert set(seen) == {(0, 0), (0, 1), (1, 0), (1, 1)} - (done_before - {(1, 1)})
    assert (report.tiles, report.resumed) == (len(seen), 4 - len(seen))
    np.testing.assert_array_equal(tw.open(tmp_path / "a.tif").compute(), np.ones((8, 8)))
    assert sorted(os.listdir(tmp_path)) == ["a.tif", "a.tif.journal"]
