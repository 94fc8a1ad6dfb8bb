"""dask and xarray interop: blocks that are tiles, dask and xarray inputs, round trips that
keep coordinates and CRS."""

import dask.array as da
import numpy as np
import pytest
import rioxarray
import xarray as xr
import zarr
from conftest import data_path
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import ndimage

import tilewise as tw
from tilewise import library as ops

# rioxarray multiplies affine transforms with `*`, which affine deprecates.
pytestmark = pytest.mark.filterwarnings("ignore::PendingDeprecationWarning")


def dem():
    return tw.open(data_path("dem", "srtm90.tif"))[1000:1300, 2000:2257]


@settings(max_examples=8)
@given(tile=st.integers(7, 120))
def test_to_dask_blocks_are_tiles_and_equal_the_whole(tile):
    a = np.random.default_rng(tile).normal(size=(150, 131)).astype("float32")
    image = ops.gaussian(tw.open(a), sigma=2.0)
    blocks = image.to_dask(tile=tile)
    assert blocks.chunksize == (min(tile, 150), min(tile, 131))
    whole = ndimage.gaussian_filter(a, 2.0, mode="nearest")
    assert np.array_equal(blocks.compute(), whole)
    assert np.array_equal(blocks.blocks[-1, 0].compute(), whole[-(150 % tile or tile):, :tile])


def test_to_dask_runs_on_a_cluster_and_names_the_pipeline(dask_client):
    image = ops.hillshade(ops.gaussian(dem(), sigma=1.0))
    blocks = image.to_dask(tile=128)
    assert len(blocks.__dask_graph__()) == blocks.npartitions == 3 * 3  # one task per tile
    assert blocks.name == image.to_dask(tile=128).name  # the same pipeline, the same name
    assert blocks.name != ops.hillshade(ops.gaussian(dem(), sigma=2.0)).to_dask(tile=128).name
    assert np.array_equal(dask_client.compute(blocks).result(), image.compute())


def test_a_dask_input_is_known_by_its_graph_name_never_its_values(tmp_path):
    def refuse(block):
        raise AssertionError("computed")

    untouchable = da.ones((64, 64), chunks=16).map_blocks(refuse, dtype=float)
    source = tw.open(untouchable).node.source
    assert source.fingerprint()["name"] == untouchable.name  # nothing computed
    a = np.arange(200 * 150, dtype="float32").reshape(200, 150)
    lazy = da.from_array(a, chunks=(50, 40)) * 2
    image = ops.gaussian(tw.open(lazy), sigma=1.5)
    expected = ndimage.gaussian_filter(a * 2, 1.5, mode="nearest")
    assert np.array_equal(image.compute(tile=32), expected)
    first = tw.save(image, tmp_path / "out.zarr", tile=64, progress=False)
    again = tw.save(ops.gaussian(tw.open(da.from_array(a, chunks=(50, 40)) * 2), sigma=1.5),
                    tmp_path / "out.zarr", tile=64, progress=False)
    assert first.tiles == 12 and again.tiles == 0 and again.resumed == 12  # same graph name
    with pytest.raises(tw.OutputExistsError, match="different pipeline"):
        tw.save(ops.gaussian(tw.open(lazy + 1), sigma=1.5), tmp_path / "out.zarr", tile=64,
                progress=False)
    assert np.array_equal(zarr.open_array(tmp_path / "out.zarr")[:], expected)


def test_to_xarray_keeps_coordinates_and_crs_and_opens_back():
    image = ops.gaussian(dem(), sigma=1.0)
    meta = image.meta
    arr = image.to_xarray(tile=100)
    assert arr.dims == ("y", "x") and isinstance(arr.data, da.Array)
    t = meta["transform"]
    assert arr.x.values[0] == t.c + 0.5 * t.a and arr.y.values[-1] == t.f + 299.5 * t.e
    assert arr.rio.crs == meta["crs"] and arr.rio.transform() == t  # rioxarray reads them
    back = tw.open(arr)
    assert back.meta["crs"] == meta["crs"] and back.meta["transform"] == t
    assert np.array_equal(back.compute(), image.compute())


def test_rioxarray_arrays_open_with_their_georeference():
    path = data_path("dem", "srtm90.tif")
    arr = rioxarray.open_rasterio(path, chunks={"y": 512, "x": 512})[:, 1000:1300, 2000:2257]
    image = tw.open(arr)
    assert image.axes == ("c", "y", "x") and image.shape == (1, 300, 257)
    assert image.meta["crs"] == dem().meta["crs"]
    assert image.meta["transform"] == dem().meta["transform"]
    assert np.array_equal(image[0].compute(), dem().compute())
    plain = xr.DataArray(np.arange(12.0).reshape(3, 4), dims=("y", "x"),
                         coords={"y": [15.0, 5.0, -5.0], "x": [1.0, 3.0, 5.0, 7.0]})
    opened = tw.open(plain)
    assert tuple(opened.meta["transform"])[:6] == (2.0, 0.0, 0.0, 0.0, -10.0, 20.0)
    assert np.array_equal(opened.compute(), plain.values)


def test_bands_round_trip_as_the_band_dimension():
    rgb = tw.open(np.arange(3 * 20 * 30, dtype="uint8").reshape(3, 20, 30), axes="cyx",
                  meta={"band_names": ("red", "green", "blue"), "nodata": 0})
    arr = rgb.to_xarray()
    assert arr.dims == ("band", "y", "x") and list(arr.band.values) == ["red", "green", "blue"]
    assert arr.attrs["_FillValue"] == 0
    back = tw.open(arr)
    assert back.axes == ("c", "y", "x") and back.meta["band_names"] == ("red", "green", "blue")
    assert back.meta["nodata"] == 0 and np.array_equal(back.compute(), rgb.compute())
