"""Microscopy readers: TIFF stacks and OME-TIFF (tifffile), CZI (pylibCZIrw).

Every value is compared with the format's own reader on the whole file; windows, metadata and
tiled filters on the images too. GeoTIFFs still open through GDAL.
"""

import numpy as np
import pytest
import rasterio
import tifffile
from affine import Affine
from conftest import data_path
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy import ndimage

import tilewise as tw
from tilewise.io import open_source, physical
from tilewise.regions import Box

SETTINGS = settings(max_examples=15, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow,
                                           HealthCheck.function_scoped_fixture])
CZI = ("microscopy", "CD_s_1_t_3_c_2_z_5.czi")


@st.composite
def windows(draw, shape):
    """A non-empty box inside an image of `shape`."""
    start = [draw(st.integers(0, n - 1)) for n in shape]
    stop = [draw(st.integers(s + 1, n)) for s, n in zip(start, shape, strict=True)]
    return Box(tuple(start), tuple(stop))


# TIFF stacks


@pytest.fixture(scope="module")
def nuclei():
    path = data_path("microscopy", "nuclei.tif")
    return path, tifffile.imread(path)


def test_nuclei_reads_as_its_60_planes_like_tifffile(nuclei):
    path, whole = nuclei
    image = tw.open(path)
    assert (image.shape, image.dtype, image.axes) == ((60, 256, 256), np.uint16, ("z", "y", "x"))
    assert image.blocks == (1, 128, 256)  # one strip of one page: tifffile's chunks
    assert image.node.source.format == "tiff" and "physical" not in image.meta
    np.testing.assert_array_equal(image.compute(), whole, strict=True)


@SETTINGS
@given(data=st.data())
def test_nuclei_windows_equal_tifffile(nuclei, data):
    path, whole = nuclei
    source = open_source(path)
    box = data.draw(windows(source.shape))
    np.testing.assert_array_equal(source.read(box), whole[box.slices], strict=True)


@pytest.mark.parametrize("executor", ["serial", "threads"])
def test_a_tiled_3d_filter_on_nuclei_equals_the_whole_array_filter(nuclei, executor):
    path, whole = nuclei
    crop = tw.open(path)[10:22, 60:190, 30:200]
    smooth = tw.map(ndimage.uniform_filter, crop, margin={"z": 1, "y": 3, "x": 3},
                    size=(3, 7, 7), mode="nearest")
    expected = ndimage.uniform_filter(whole[10:22, 60:190, 30:200], size=(3, 7, 7),
                                      mode="nearest")
    got = smooth.compute(tile={"z": 5, "y": 48, "x": 64}, executor=executor, workers=2)
    np.testing.assert_array_equal(got, expected, strict=True)


@pytest.fixture
def ome_tiff(tmp_path):
    """A tiled TCZYX OME-TIFF with physical sizes, a time step and channel names."""
    data = np.random.default_rng(3).integers(0, 4000, (2, 3, 4, 70, 90)).astype("uint16")
    path = tmp_path / "cells.ome.tif"
    tifffile.imwrite(path, data, ome=True, tile=(32, 32), metadata={
        "axes": "TCZYX", "PhysicalSizeX": 0.25, "PhysicalSizeY": 0.25, "PhysicalSizeZ": 500,
        "PhysicalSizeZUnit": "nm", "TimeIncrement": 1.5, "TimeIncrementUnit": "min",
        "Channel": {"Name": ["DAPI", "GFP", "mCherry"]}})
    return path, data


def test_an_ome_tiff_reads_its_axes_sizes_and_channel_names(ome_tiff):
    path, data = ome_tiff
    image = tw.open(path)
    assert image.axes == ("t", "c", "z", "y", "x") and image.blocks == (1, 1, 1, 32, 32)
    assert image.meta["physical"] == {
        "t": {"size": 1.5, "unit": "minute", "origin": 0.0},
        "z": {"size": 500.0, "unit": "nanometer", "origin": 0.0},
        "y": {"size": 0.25, "unit": "micrometer", "origin": 0.0},
        "x": {"size": 0.25, "unit": "micrometer", "origin": 0.0}}
    assert image.meta["band_names"] == ("DAPI", "GFP", "mCherry")
    np.testing.assert_array_equal(image.compute(tile={"t": 1, "z": 3, "y": 40, "x": 50}),
                                  tifffile.imread(path), strict=True)
    part = image[1, 1:, :, 10:, 8:]
    assert part.meta["band_names"] == ("GFP", "mCherry")
    assert part.meta["physical"]["x"] == {"size": 0.25, "unit": "micrometer", "origin": 2.0}
    np.testing.assert_array_equal(part.compute(), data[1, 1:, :, 10:, 8:])


def test_an_ome_tiff_is_recognised_by_content_whatever_its_name(ome_tiff, tmp_path):
    path, data = ome_tiff
    renamed = tmp_path / "cells.dat"
    path.rename(renamed)
    assert open_source(renamed).format == "tiff"
    assert tw.open(renamed, axes="tczyx").shape == data.shape


def test_pyramid_levels_and_series_are_chosen_by_option(tmp_path):
    base = np.random.default_rng(4).integers(0, 255, (3, 128, 96)).astype("uint8")
    path = tmp_path / "pyramid.ome.tif"
    with tifffile.TiffWriter(path) as tif:
        meta = {"axes": "ZYX", "PhysicalSizeX": 0.5, "PhysicalSizeY": 0.5}
        tif.write(base, subifds=2, tile=(32, 32), metadata=meta)
        for level in (1, 2):
            step = 2 ** level
            tif.write(base[:, ::step, ::step], subfiletype=1, tile=(32, 32))
        tif.write(np.arange(40 * 50, dtype="float32").reshape(40, 50), metadata={"axes": "YX"})
    half = tw.open(path, level=1)
    assert half.shape == (3, 64, 48)
    np.testing.assert_array_equal(half.compute(),
                                  tifffile.imread(path, series=0, level=1), strict=True)
    # Pixels twice as large; the first one's centre between the base's first two.
    assert half.meta["physical"]["x"] == {"size": 1.0, "unit": "micrometer", "origin": 0.25}
    second = tw.open(path, series=1)
    assert (second.shape, second.dtype, second.axes) == ((40, 50), np.float32, ("y", "x"))
    np.testing.assert_array_equal(second.compute(), tifffile.imread(path, series=1))
    with pytest.raises(tw.ParameterError, match=r"series=2 is not one of the 2 series of "
                                                r".*pyramid\.ome\.tif \(0 to 1\)"):
        tw.open(path, series=2)
    with pytest.raises(tw.ParameterError, match=r"level=3 is not one of the 3 level"):
        tw.open(path, level=3)
    with pytest.raises(tw.ParameterError, match="format 'tiff' takes no option 'scene'"):
        tw.open(path, scene=1)


def test_an_imagej_hyperstack_reads_its_calibration(tmp_path):
    data = np.arange(4 * 2 * 30 * 20, dtype="uint16").reshape(4, 2, 30, 20)
    path = tmp_path / "hyper.tif"
    tifffile.imwrite(path, data, imagej=True, resolution=(1 / 0.2, 1 / 0.2),
                     metadata={"axes": "ZCYX", "spacing": 1.25, "unit": "micron"})
    image = tw.open(path)
    assert image.axes == ("z", "c", "y", "x")
    assert image.meta["physical"] == {a: {"size": s, "unit": "micrometer", "origin": 0.0}
                                      for a, s in (("z", 1.25), ("y", 0.2), ("x", 0.2))}
    np.testing.assert_array_equal(image.compute(tile={"z": 3, "c": 2, "y": 7, "x": 9}), data)


def test_a_tiled_geotiff_still_opens_through_gdal(tmp_path):
    data = np.arange(3 * 64 * 80, dtype="int16").reshape(3, 64, 80)
    path = tmp_path / "geo.ome.tif"  # the name says OME-TIFF; the content decides
    with rasterio.open(path, "w", driver="GTiff", width=80, height=64, count=3, dtype="int16",
                       crs="EPSG:32631", transform=Affine(10, 0, 500000, 0, -10, 4e6),
                       tiled=True, blockxsize=32, blockysize=32) as ds:
        ds.write(data)
    image = tw.open(path)
    assert image.node.source.format == "geotiff" and image.blocks == (3, 32, 32)
    assert image.meta["crs"] == rasterio.crs.CRS.from_epsg(32631)
    np.testing.assert_array_equal(image.compute(tile=16), data)


def test_unit_names_are_ome_ngff_ones():
    axes = pytest.importorskip("ome_zarr.axes")
    known = set(axes.KNOWN_SPATIAL_UNITS) | set(axes.KNOWN_TEMPORAL_UNITS)
    assert set(physical.UNITS.values()) <= known
    assert [physical.unit_name(u) for u in ("µm", "\u03bcm", "um", "micron", "Micron", "Å",
                                            "nm", "ms", "Ms", "min", "s", "parsec")] == [
        "micrometer", "micrometer", "micrometer", "micrometer", "micrometer", "angstrom",
        "nanometer", "millisecond", "megasecond", "minute", "second", "parsec"]
    assert physical.metres_to_micrometres("9.0576674152210312E-08") == 0.090576674152210312


# CZI


@pytest.fixture(scope="module")
def czi_file():
    czi = pytest.importorskip("pylibCZIrw.czi")
    path = data_path(*CZI)
    with czi.open_czi(path) as doc:
        planes = [[[doc.read(plane={"T": t, "C": c, "Z": z})[..., 0] for z in range(5)]
                   for c in range(2)] for t in range(3)]
    return path, np.array(planes)


def test_the_czi_reads_as_tczyx_like_pylibczirw(czi_file):
    path, whole = czi_file
    image = tw.open(path)
    assert (image.shape, image.dtype, image.axes) == \
        ((3, 2, 5, 170, 240), np.uint16, ("t", "c", "z", "y", "x"))
    assert image.blocks == (1, 1, 1, 170, 240)  # its subblocks are whole planes
    assert image.node.source.format == "czi"
    np.testing.assert_array_equal(image.compute(), whole, strict=True)


def test_the_czi_metadata_has_pixel_sizes_and_channel_names(czi_file):
    image = tw.open(czi_file[0])
    sizes = {a: p["size"] for a, p in image.meta["physical"].items()}
    assert sizes == {"z": 0.32, "y": 0.090576674152210312, "x": 0.090576674152210312}
    assert {p["unit"] for p in image.meta["physical"].values()} == {"micrometer"}
    assert image.meta["band_names"] == ("LED555", "LED470")
    assert image[:, 1].meta["band_names"] is None and image[:, 1:].meta["band_names"] == (
        "LED470",)


@SETTINGS
@given(data=st.data())
def test_czi_windows_equal_pylibczirw(czi_file, data):
    path, whole = czi_file
    source = open_source(path)
    box = data.draw(windows(source.shape))
    np.testing.assert_array_equal(source.read(box), whole[box.slices], strict=True)


@pytest.mark.parametrize("executor", ["serial", "threads", "processes"])
def test_a_tiled_filter_on_the_czi_equals_the_whole_array_filter(czi_file, executor):
    path, whole = czi_file
    size = (1, 1, 3, 5, 5)
    smooth = tw.map(ndimage.minimum_filter, tw.open(path),
                    margin={"z": 1, "y": 2, "x": 2}, size=size, mode="reflect")
    got = smooth.compute(tile={"t": 2, "c": 1, "z": 2, "y": 64, "x": 100}, executor=executor,
                         workers=2)
    np.testing.assert_array_equal(got, ndimage.minimum_filter(whole, size=size, mode="reflect"),
                                  strict=True)


def test_czi_scene_and_axes_options(czi_file):
    path, whole = czi_file
    with pytest.raises(tw.ParameterError, match=r"scene=1: .*CD_s_1_t_3_c_2_z_5\.czi declares "
                                                r"no scenes"):
        tw.open(path, scene=1)
    renamed = tw.open(path, axes=["t", "ch", "z", "y", "x"], scene=0)
    assert renamed.axes == ("t", "ch", "z", "y", "x") and "z" in renamed.meta["physical"]
    np.testing.assert_array_equal(renamed[2, :, 4].compute(), whole[2, :, 4])


def test_a_mosaic_czi_reads_one_scene_with_subblock_blocks(tmp_path):
    czi = pytest.importorskip("pylibCZIrw.czi")
    path = str(tmp_path / "mosaic.czi")
    rng = np.random.default_rng(6)
    with czi.create_czi(path) as doc:
        for scene, (x0, y0) in enumerate([(0, 0), (1000, 500)]):
            for z in range(3):
                for ty in range(2):
                    for tx in range(3):
                        tile = rng.integers(0, 60000, (64, 64, 1)).astype("uint16")
                        doc.write(tile, location=(x0 + tx * 64, y0 + ty * 64), plane={"Z": z},
                                  scene=scene)
        doc.write_metadata(channel_names={0: "DAPI"}, scale_x=1e-7, scale_y=1e-7, scale_z=5e-7)
    with czi.open_czi(path) as doc:
        whole = np.array([doc.read(plane={"Z": z}, scene=1)[..., 0] for z in range(3)])
    image = tw.open(path, scene=1)
    assert image.shape == (1, 1, 3, 128, 192) and image.blocks == (1, 1, 1, 64, 64)
    assert image.meta["band_names"] == ("DAPI",)
    assert {a: p["size"] for a, p in image.meta["physical"].items()} == {"z": 0.5, "y": 0.1,
                                                                         "x": 0.1}
    np.testing.assert_array_equal(image[0, 0].compute(tile={"z": 2, "y": 50, "x": 70}), whole,
                                  strict=True)
    assert not np.array_equal(tw.open(path)[0, 0].compute(), whole)  # scene 0 by default
    with pytest.raises(tw.ParameterError, match=r"scene=2 is not one of the scenes of "
                                                r".*mosaic\.czi \(0, 1\)"):
        tw.open(path, scene=2)
