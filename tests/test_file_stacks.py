"""Many files as one array: a glob, a list or a folder, members in any format, opened lazily."""

import contextlib
import os
import re

import numpy as np
import pytest
import tifffile
from astropy.io import fits
from astropy.wcs import WCS

import tilewise as tw
from tilewise.io import handles, open_source
from tilewise.regions import Box

FRAMES, HEIGHT, WIDTH = 50, 36, 44


def open_files(folder):
    """The distinct files under `folder` this process holds open (a FITS file opened with a
    memory map takes two descriptors)."""
    names = set()
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):  # the listing's own descriptor is gone
            names.add(os.readlink(f"/proc/self/fd/{fd}"))
    return {n for n in names if n.startswith(str(folder))}


def solar_frames(folder, n=FRAMES):
    """`n` FITS frames of one helioprojective grid, written with astropy."""
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["HPLN-TAN", "HPLT-TAN"]
    wcs.wcs.cunit = ["arcsec", "arcsec"]
    wcs.wcs.cdelt = [0.6, 0.6]
    data = np.random.default_rng(7).integers(-3000, 3000, (n, HEIGHT, WIDTH)).astype("float32")
    for i, frame in enumerate(data):
        fits.PrimaryHDU(frame, header=wcs.to_header()).writeto(folder / f"frame_{i:03d}.fits")
    return data, wcs


@pytest.fixture
def frames(tmp_path):
    return (tmp_path, *solar_frames(tmp_path))


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc")
def test_fifty_fits_frames_reduce_like_numpy_with_few_files_open(frames, monkeypatch):
    folder, data, wcs = frames
    monkeypatch.setattr(handles, "CAPACITY", 4)
    stack = tw.open(str(folder / "frame_*.fits"))
    assert (stack.shape, stack.axes, stack.blocks) == ((FRAMES, HEIGHT, WIDTH), ("t", "y", "x"),
                                                       (1, 1, WIDTH))
    assert stack.node.source.format == "stack" and not open_files(folder)  # lazily opened
    assert stack.meta["wcs"].to_header_string() == wcs.to_header_string()
    seen = []

    def count_open(a):
        seen.append(len(open_files(folder)))
        return a

    watched = tw.map(count_open, stack)
    totals = tw.reduce(watched, "sum", axis=("y", "x")).compute(
        executor="threads", workers=2, tile={"t": 3, "y": HEIGHT, "x": WIDTH})
    np.testing.assert_array_equal(totals, data.sum(axis=(1, 2), dtype="float64"))
    peaks = tw.reduce(stack, "max", axis=("y", "x")).compute(tile={"t": 7, "y": 20, "x": 44})
    np.testing.assert_array_equal(peaks, data.max(axis=(1, 2)))
    # Each thread (the driver's for the probe, two workers) keeps at most 4 files open.
    assert len(seen) >= FRAMES // 3 and max(seen) <= 3 * 4


def test_a_stack_is_a_folder_a_list_or_a_pattern(frames):
    folder, data, _ = frames
    listed = sorted(folder.iterdir(), reverse=True)[:5]
    np.testing.assert_array_equal(tw.open(listed).compute(), data[::-1][:5])  # list order kept
    whole = tw.open(folder, axis="z")
    assert whole.axes == ("z", "y", "x")
    got = whole[7:43, 5:30, 11:].compute(tile={"z": 4, "y": 9, "x": 13}, executor="processes",
                                         workers=2)
    np.testing.assert_array_equal(got, data[7:43, 5:30, 11:])
    source = open_source(str(folder / "*.fits"))
    assert source.paths == tuple(str(p) for p in sorted(folder.iterdir()))
    with pytest.raises(tw.InputError, match=r"no file matches .*\*\.fit$"):
        tw.open(str(folder / "*.fit"))


def test_a_changed_member_changes_the_stack_fingerprint(frames):
    folder, _, _ = frames
    first = open_source(folder).fingerprint()
    assert first["format"] == "stack" and first["files"] == FRAMES and first["axis"] == "t"
    path = folder / "frame_031.fits"
    st = os.stat(path)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    assert open_source(folder).fingerprint()["check"] != first["check"]


def test_a_folder_of_tiff_planes_reads_as_a_z_stack(tmp_path):
    planes = np.random.default_rng(8).integers(0, 60000, (9, 40, 30)).astype("uint16")
    for i, plane in enumerate(planes):
        tifffile.imwrite(tmp_path / f"z{i:02d}.tif", plane)
    (tmp_path / ".DS_Store").write_bytes(b"\0")  # hidden: not a member
    stack = tw.open(tmp_path, axis="z")
    assert stack.axes == ("z", "y", "x") and stack.dtype == np.uint16
    assert {m.format for m in stack.node.source.members} == {"geotiff"}  # single pages: GDAL
    np.testing.assert_array_equal(stack.compute(tile={"z": 2, "y": 16, "x": 16}), planes,
                                  strict=True)


def test_cubes_join_along_their_own_axis(tmp_path):
    cubes = [np.full((n, 8, 6), i, "int16") + np.arange(n)[:, None, None]
             for i, n in enumerate((3, 3, 2))]
    for i, cube in enumerate(cubes):
        fits.PrimaryHDU(cube).writeto(tmp_path / f"c{i}.fits")
    stack = tw.open(str(tmp_path / "c*.fits"), axis="z")
    assert stack.shape == (8, 8, 6) and stack.blocks == (1, 1, 6)  # unequal: no file blocks
    np.testing.assert_array_equal(stack[2:7].compute(tile={"z": 3, "y": 8, "x": 6}),
                                  np.concatenate(cubes)[2:7])
    even = tw.open([tmp_path / "c0.fits", tmp_path / "c1.fits"], axis="z")
    assert even.blocks == (3, 1, 6)


def test_options_go_to_every_member(tmp_path):
    for i in range(3):
        fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(np.full((4, 5), i, "int16"), name="SCI"),
                      fits.ImageHDU(np.full((4, 5), -i, "int16"), name="ERR")]
                     ).writeto(tmp_path / f"x{i}.fits")
    errors = tw.open(tmp_path, hdu="ERR", axes="tab")
    assert errors.axes == ("t", "a", "b")
    np.testing.assert_array_equal(errors.compute()[:, 0, 0], [0, -1, -2])
    with pytest.raises(tw.ParameterError, match=r"format 'fits' takes no option 'series' \(for "
                                                r".*x0\.fits; its options: hdu\)"):
        tw.open(tmp_path, series=0)


@pytest.mark.parametrize(("odd", "why"), [
    (np.zeros((HEIGHT, WIDTH + 1), "float32"), rf"its shape is \({HEIGHT}, {WIDTH + 1}\), not "
                                               rf"\({HEIGHT}, {WIDTH}\)"),
    (np.zeros((HEIGHT, WIDTH), "int32"), "its dtype is int32, not float32"),
    (np.zeros((2, HEIGHT, WIDTH), "float32"), r"its axes are \('z', 'y', 'x'\), not \('y', "
                                              r"'x'\)")])
def test_a_mismatched_file_is_refused_by_name(tmp_path, odd, why):
    solar_frames(tmp_path, n=6)
    fits.PrimaryHDU(odd).writeto(tmp_path / "frame_003b.fits")
    with pytest.raises(tw.GridMismatchError,
                       match=rf"frame_003b\.fits does not match .*frame_000\.fits, the first "
                             rf"file of the stack .*: {why}"):
        tw.open(tmp_path)


def test_members_must_be_readable(tmp_path):
    solar_frames(tmp_path, n=3)
    (tmp_path / "notes.txt").write_text("observing log\n")
    with pytest.raises(tw.UnsupportedFormatError, match=r"notes\.txt: unknown suffix '\.txt'"):
        tw.open(tmp_path)
    assert tw.open(str(tmp_path / "*.fits")).shape == (3, HEIGHT, WIDTH)
    assert open_source(str(tmp_path / "*.fits")).read(Box((0, 0, 0), (0, 2, 2))).shape == (0, 2,
                                                                                             2)


def test_the_docs_example_runs():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    with open(os.path.join(root, "docs", "formats.md")) as f:
        code = re.search(r"```python\n(.*?)```", f.read(), re.S).group(1)
    exec(compile(code, "docs/formats.md", "exec"), {})
