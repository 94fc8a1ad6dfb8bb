"""The FITS reader (astropy): HDUs, sections, scaling, axes from CTYPE, the WCS through slicing."""

import numpy as np
import pytest
from conftest import data_path
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy import ndimage

import tilewise as tw
from tilewise import library as ops
from tilewise import spec
from tilewise.io import open_source
from tilewise.regions import Box

fits = pytest.importorskip("astropy.io.fits")
WCS = pytest.importorskip("astropy.wcs").WCS

SETTINGS = settings(max_examples=15, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow,
                                           HealthCheck.function_scoped_fixture])
HST = ("astronomy", "j8bt06nyq_flt.fits")
CUBE = ("astronomy", "l1448_13co.fits")


def astropy_read(path, hdu):
    """The HDU's data as astropy gives it (scaled), and its WCS with the file's tables."""
    with fits.open(path) as hdus:
        return np.array(hdus[hdu].data), WCS(hdus[hdu].header, hdus)


def same_wcs(a, b):
    return a.to_header_string(relax=True) == b.to_header_string(relax=True)


@pytest.fixture(scope="module")
def cube():
    path = data_path(*CUBE)
    return (path, *astropy_read(path, 0))


@pytest.mark.parametrize(("hdu", "index", "dtype"), [(None, 1, "float32"), ("SCI", 1, "float32"),
                                                     (("ERR", 1), 2, "float32"),
                                                     (3, 3, "int16"), ("dq", 3, "int16")])
def test_hst_hdus_are_chosen_and_read_like_astropy(hdu, index, dtype):
    path = data_path(*HST)
    image = tw.open(path) if hdu is None else tw.open(path, hdu=hdu)
    data, wcs = astropy_read(path, index)
    source = image.node.source
    assert (source.hdu, image.shape, image.axes) == (index, (1024, 1024), ("y", "x"))
    assert image.dtype == np.dtype(dtype) and image.dtype.isnative  # FITS is big-endian on disk
    assert image.blocks == (1, 1024)  # rows: FITS stores the array row after row
    assert same_wcs(image.meta["wcs"], wcs)
    np.testing.assert_array_equal(image[300:700, 200:900].compute(tile=128),
                                  data[300:700, 200:900])


def test_bad_hdus_are_refused_naming_the_image_hdus():
    path = data_path(*HST)
    with pytest.raises(tw.ParameterError, match=r"hdu='WHT' names no HDU of .*_flt\.fits; its "
                                                r"image HDUs: 1 \(SCI\), 2 \(ERR\), 3 \(DQ\)"):
        tw.open(path, hdu="WHT")
    with pytest.raises(tw.ParameterError, match=r"hdu=0 of .* is a PrimaryHDU holding no image"):
        tw.open(path, hdu=0)
    with pytest.raises(tw.ParameterError, match="format 'fits' takes no option 'series'"):
        tw.open(path, series=1)


def test_the_cube_axes_come_from_ctype_and_values_from_astropy(cube):
    path, data, wcs = cube
    image = tw.open(path)
    assert image.axes == ("z", "y", "x") and image.shape == (53, 105, 105)  # VOPT, DEC, RA
    assert image.blocks == (1, 1, 105)
    assert same_wcs(image.meta["wcs"], wcs)
    np.testing.assert_array_equal(image.compute(), data)


@SETTINGS
@given(data=st.data())
def test_cube_windows_and_their_wcs_equal_astropy_slicing(cube, data):
    path, whole, wcs = cube
    start = [data.draw(st.integers(0, n - 1)) for n in whole.shape]
    stop = [data.draw(st.integers(s + 1, n)) for s, n in zip(start, whole.shape, strict=True)]
    window = tuple(slice(a, b) for a, b in zip(start, stop, strict=True))
    part = tw.open(path)[window]
    np.testing.assert_array_equal(part.compute(), whole[window])
    expected = wcs.slice(window)
    assert same_wcs(part.meta["wcs"], expected)
    pixels = np.indices(part.shape).reshape(3, -1)[::-1]
    np.testing.assert_array_equal(np.array(part.meta["wcs"].pixel_to_world_values(*pixels)),
                                  np.array(expected.pixel_to_world_values(*pixels)))
    assert open_source(path).read(Box(tuple(start), tuple(stop))).shape == part.shape


@pytest.mark.parametrize("executor", ["serial", "threads"])  # processes: test_file_stacks
def test_a_tiled_filter_on_the_cube_equals_the_whole_array_filter(cube, executor):
    path, data, _ = cube
    smooth = tw.map(ndimage.uniform_filter, tw.open(path), margin=2, size=5, mode="nearest")
    got = smooth.compute(tile={"z": 7, "y": 40, "x": 105}, executor=executor, workers=2)
    np.testing.assert_array_equal(got, ndimage.uniform_filter(data, size=5, mode="nearest"),
                                  strict=True)


def test_the_rebinned_cube_keeps_a_wcs_rescaled_from_the_file(cube, tmp_path):
    path, _, wcs = cube
    small = ops.rebin(tw.open(path), factors={"y": 5, "x": 5})
    tw.save(small, tmp_path / "small.zarr")
    saved = tw.open(tmp_path / "small.zarr")
    centre = saved.meta["wcs"].pixel_to_world_values(0, 0, 0)
    np.testing.assert_allclose(centre, wcs.pixel_to_world_values(2, 2, 0), rtol=0, atol=1e-9)


def test_an_integer_index_drops_its_wcs_axis(cube):
    """A plane of the cube keeps a 2-D celestial WCS giving the cube's world coordinates; a
    slice through one celestial axis has no FITS WCS left, and says so with None."""
    img = tw.open(cube[0])
    plane = img[5, 10:, :]
    assert plane.axes == ("y", "x") and plane.meta["wcs"].pixel_n_dim == 2
    cube_world = img.meta["wcs"].pixel_to_world_values(7, 3 + 10, 5)
    np.testing.assert_allclose(plane.meta["wcs"].pixel_to_world_values(7, 3), cube_world[:2])
    assert img[:, 50].meta["wcs"] is None


def test_bscale_bzero_and_blank_are_applied_as_astropy_does(tmp_path):
    raw = np.arange(-600, 600, dtype="int16").reshape(30, 40)
    hdu = fits.PrimaryHDU(raw)
    hdu.header.update(BSCALE=0.25, BZERO=100.0, BLANK=-600)
    hdu.writeto(tmp_path / "scaled.fits")
    image = tw.open(tmp_path / "scaled.fits")
    data, _ = astropy_read(tmp_path / "scaled.fits", 0)
    assert image.dtype == data.dtype == np.float32 and np.isnan(data[0, 0])
    assert np.isnan(image.meta["nodata"]) and "wcs" not in image.meta
    np.testing.assert_array_equal(image.compute(tile=7), data)
    np.testing.assert_array_equal(image[0, 1:3].compute(), [100 - 599 / 4, 100 - 598 / 4])

    unsigned = np.arange(0, 60000, 50, dtype="uint16").reshape(40, 30)
    fits.PrimaryHDU(unsigned).writeto(tmp_path / "u16.fits")  # BZERO = 32768
    image = tw.open(tmp_path / "u16.fits")
    assert image.dtype == np.uint16
    np.testing.assert_array_equal(image.compute(tile=9), unsigned, strict=True)

    flagged = fits.PrimaryHDU(np.arange(12, dtype="int32").reshape(3, 4))
    flagged.header["BLANK"] = 7
    flagged.writeto(tmp_path / "blank.fits")
    image = tw.open(tmp_path / "blank.fits")  # astropy makes floats to hold NaN for BLANK
    data, _ = astropy_read(tmp_path / "blank.fits", 0)
    assert image.dtype == data.dtype == np.float64 and np.isnan(image.meta["nodata"])
    np.testing.assert_array_equal(image.compute(tile=2), data)


def test_axes_are_named_from_ctype_else_by_position(tmp_path):
    wcs = WCS(naxis=4)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN", "FREQ", "STOKES"]
    data = np.arange(2 * 3 * 4 * 5, dtype="float32").reshape(2, 3, 4, 5)
    fits.PrimaryHDU(data, header=wcs.to_header()).writeto(tmp_path / "stokes.fits")
    assert tw.open(tmp_path / "stokes.fits").axes == ("c", "z", "y", "x")
    wcs = WCS(naxis=3)
    wcs.wcs.ctype = ["HPLN-TAN", "HPLT-TAN", "WAVE"]
    fits.PrimaryHDU(data[0], header=wcs.to_header()).writeto(tmp_path / "solar.fits")
    assert tw.open(tmp_path / "solar.fits").axes == ("z", "y", "x")
    wcs.wcs.ctype = ["PIXEL", "SLIT", "WAVE"]  # no kind known for two of them
    fits.PrimaryHDU(data[0, ::-1], header=wcs.to_header()).writeto(tmp_path / "raw.fits")
    image = tw.open(tmp_path / "raw.fits")
    assert image.axes == ("z", "y", "x") and "wcs" in image.meta
    assert tw.open(tmp_path / "raw.fits", axes="lsw").axes == ("l", "s", "w")


def test_a_tile_compressed_image_reads_by_its_tiles(tmp_path):
    data = np.random.default_rng(2).integers(0, 1000, (90, 70)).astype("int32")
    hdus = fits.HDUList([fits.PrimaryHDU(),
                         fits.CompImageHDU(data, name="IMG", tile_shape=(16, 32))])
    hdus.writeto(tmp_path / "tiles.fits")
    image = tw.open(tmp_path / "tiles.fits")
    assert image.node.source.hdu == 1 and image.blocks == (16, 32)
    np.testing.assert_array_equal(image.compute(tile={"y": 20, "x": 33}), data)


def test_a_pipeline_file_passes_format_options(tmp_path):
    path = data_path(*HST)
    (tmp_path / "p.yaml").write_text(
        f"inputs:\n  dq: {{path: {path}, format: fits, options: {{hdu: DQ}}}}\n"
        "outputs:\n  dq: dq.npy\n")
    tw.save(*spec.load(tmp_path / "p.yaml").images, tmp_path / "dq.npy")
    np.testing.assert_array_equal(np.load(tmp_path / "dq.npy"), astropy_read(path, 3)[0])
    (tmp_path / "bad.yaml").write_text(
        f"inputs:\n  dq: {{path: {path}, options: {{hdu: DQX}}}}\noutputs:\n  dq: dq.npy\n")
    with pytest.raises(tw.ParameterError, match=r"bad\.yaml line 2: inputs\.dq: hdu='DQX' names "
                                                r"no HDU"):
        spec.load(tmp_path / "bad.yaml")
