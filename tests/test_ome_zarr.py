"""OME-Zarr output: readable by ome-zarr-py, valid for ome-zarr-models (NGFF 0.4 and 0.5), every
pyramid level equal to the whole array's block means (or first pixels), resumable."""

import os
import re
import signal
import time
import warnings

import numpy as np
import pytest
import tifffile
import zarr
from conftest import data_path, launch_child, tiles_journaled
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ome_zarr.format import FormatV04, FormatV05
from ome_zarr.io import parse_url
from ome_zarr.reader import Reader
from ome_zarr_models.v04.image import Image as ImageV04
from ome_zarr_models.v05.image import Image as ImageV05

import tilewise as tw
from tilewise import library as ops
from tilewise.io import sink_class
from tilewise.io.ome_zarr import OMEZarrSink
from tilewise.io.pyramid import Pyramid

PHYSICAL = {"t": {"size": 30.0, "unit": "second", "origin": 0.0},
            "z": {"size": 0.32, "unit": "micrometer", "origin": 5.0},
            "y": {"size": 0.0906, "unit": "micrometer", "origin": -1.5},
            "x": {"size": 0.0906, "unit": "micrometer", "origin": 2.25}}


def reference_level(a, axes, k, method, nodata=None):
    """Level k by whole-array NumPy: blocks of 2**k along `axes` (cut at the end), their first
    pixel, or the float64 mean of their values other than NaN and nodata, rounded half up for
    integers (nodata, or NaN, when none is left)."""
    f = 2**k
    if method == "nearest":
        return a[tuple(slice(None, None, f) if i in axes else slice(None) for i in range(a.ndim))]
    x = a.astype(np.float64)
    if nodata is not None:
        x[a == nodata] = np.nan
    x = np.pad(x, [(0, -n % f) if i in axes else (0, 0) for i, n in enumerate(a.shape)],
               constant_values=np.nan)
    split, blocks = [], []
    for i, n in enumerate(x.shape):
        if i in axes:
            blocks.append(len(split) + 1)
            split += [n // f, f]
        else:
            split.append(n)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # blocks with nothing left: NaN
        mean = np.nanmean(x.reshape(split), axis=tuple(blocks))
    if a.dtype.kind in "iu":
        mean = np.floor(mean + 0.5)
    if nodata is not None:
        mean[np.isnan(mean)] = nodata
    return mean.astype(a.dtype)


def levels_of(path):
    group = zarr.open_group(path, mode="r")
    attrs = group.attrs.asdict()
    multiscale = attrs.get("ome", attrs)["multiscales"][0]
    return [group[d["path"]][...] for d in multiscale["datasets"]], multiscale


def with_options(a, axes, **options):
    return tw.open(a, axes=axes, meta={"physical": {k: v for k, v in PHYSICAL.items()
                                                    if k in axes}, "ome_zarr": options})


@st.composite
def cases(draw):
    axes = draw(st.sampled_from(["yx", "cyx", "zyx", "tczyx"]))
    sizes = {"t": draw(st.integers(1, 2)), "c": draw(st.integers(1, 3)),
             "z": draw(st.integers(1, 11)), "y": draw(st.integers(1, 40)),
             "x": draw(st.integers(1, 40))}
    shape = tuple(sizes[a] for a in axes)
    levels = draw(st.integers(0, 3))
    scaled = draw(st.sampled_from(["yx", "zyx"])) if "z" in axes else "yx"
    tile = {}
    for a, n in zip(axes, shape, strict=True):
        if a in scaled:
            tile[a] = draw(st.sampled_from([n, 2**levels, 2 * 2**levels, 3 * 2**levels]))
        elif a != "c":
            tile[a] = draw(st.integers(1, n))
    dtype = draw(st.sampled_from(["uint16", "float32"]))
    method = draw(st.sampled_from(["mean", "mean", "nearest"]))
    return axes, shape, levels, scaled, tile, dtype, method


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cases(), st.sampled_from(["0.4", "0.5"]), st.sampled_from(["serial", "threads"]),
       st.integers(0, 2**32 - 1))
def test_every_level_equals_the_whole_array_downsampling(tmp_path_factory, case, version,
                                                         executor, seed):
    axes, shape, levels, scaled, tile, dtype, method = case
    rng = np.random.default_rng(seed)
    nodata = None
    if dtype == "float32":  # eighths: float64 sums of them are exact in any order
        a = (rng.integers(-4000, 4000, shape) / 8).astype(dtype)
        a[rng.random(shape) < 0.2] = np.nan
    else:
        a = rng.integers(0, 65535, shape).astype(dtype)
        nodata = 0 if rng.random() < 0.5 else None
        if nodata is not None:
            a[rng.random(shape) < 0.3] = 0
    image = tw.map(lambda v: v, with_options(a, axes), meta={"nodata": nodata, "ome_zarr": {
        "version": version, "levels": levels, "method": method, "scaled_axes": scaled}})
    out = tmp_path_factory.mktemp("ome") / "a.ome.zarr"
    tw.save(image, out, tile=tile, executor=executor, workers=2)
    got, multiscale = levels_of(out)
    assert len(got) == levels + 1 and multiscale["axes"][-1] == {
        "name": "x", "type": "space", "unit": "micrometer"}
    positions = tuple(axes.index(s) for s in scaled)
    for k, level in enumerate(got):
        np.testing.assert_array_equal(level, reference_level(a, positions, k, method, nodata),
                                      strict=True)


def test_float64_levels_are_the_same_whatever_the_tiles(tmp_path):
    """float64 sums round, so the order of additions matters: it is fixed by each block's
    place in the image, not by the tile."""
    a = np.random.default_rng(1).normal(0, 1e6, (3, 70, 90)) ** 3
    image = with_options(a, "zyx", levels=3, scaled_axes="zyx")
    tw.save(image, tmp_path / "whole.ome.zarr", tile=a.shape)
    tw.save(image, tmp_path / "tiled.ome.zarr", tile=(3, 16, 24), executor="threads",
            workers=2)
    whole, _ = levels_of(tmp_path / "whole.ome.zarr")
    tiled, _ = levels_of(tmp_path / "tiled.ome.zarr")
    for k, (w, t) in enumerate(zip(whole, tiled, strict=True)):
        np.testing.assert_array_equal(t, w, strict=True)
        np.testing.assert_allclose(w, reference_level(a, (0, 1, 2), k, "mean"), rtol=0,
                                   atol=1e-14 * np.abs(a).max())  # summed in another order


@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_tczyx_opens_in_ome_zarr_py_and_validates_with_ome_zarr_models(tmp_path, version):
    rng = np.random.default_rng(2)
    a = rng.integers(0, 4000, (2, 3, 5, 150, 135)).astype("uint16")
    image = tw.map(lambda v: v, with_options(a, "tczyx", version=version, levels=2),
                   meta={"band_names": ("DAPI", "GFP", "mCherry")})
    out = tmp_path / "cells.ome.zarr"
    tw.save(image, out, executor="processes" if version == "0.5" else "threads", workers=2)
    group = zarr.open_group(out, mode="r")
    model = (ImageV05 if version == "0.5" else ImageV04).from_zarr(group)
    attrs = model.attributes.ome if version == "0.5" else model.attributes
    assert [d.path for d in attrs.multiscales[0].datasets] == ["0", "1", "2"]
    fmt = FormatV05() if version == "0.5" else FormatV04()
    node = next(iter(Reader(parse_url(str(out), fmt=fmt))()))
    assert [d.shape for d in node.data] == [a.shape, (2, 3, 5, 75, 68), (2, 3, 5, 38, 34)]
    np.testing.assert_array_equal(np.asarray(node.data[0]), a, strict=True)
    np.testing.assert_array_equal(np.asarray(node.data[2]),
                                  reference_level(a, (3, 4), 2, "mean"), strict=True)
    assert node.metadata["channel_names"] == ["DAPI", "GFP", "mCherry"]
    assert [ax["type"] for ax in node.metadata["axes"]] == ["time", "channel", "space", "space",
                                                            "space"]
    transforms = node.metadata["coordinateTransformations"]
    # Level k's pixel covers 2**k level-0 pixels along y and x: the centre of its pixel 0 is
    # (2**k - 1) / 2 pixels past level 0's, in micrometres.
    for k, (scale, shift) in enumerate(transforms):
        assert scale == {"type": "scale", "scale": pytest.approx(
            [30.0, 1.0, 0.32, 0.0906 * 2**k, 0.0906 * 2**k])}
        assert shift == {"type": "translation", "translation": pytest.approx(
            [0.0, 0.0, 5.0, -1.5 + (2**k - 1) / 2 * 0.0906, 2.25 + (2**k - 1) / 2 * 0.0906])}


@pytest.mark.parametrize("version", ["0.5", "0.4"])
def test_real_czi_as_ome_zarr(tmp_path, version):
    """The Zeiss CZI (T=3, C=2, Z=5): its pixels, channel names and pixel sizes in the
    OME-Zarr, each level the whole array's block means, opened by ome-zarr-py, validated."""
    czi = tw.open(data_path("microscopy", "CD_s_1_t_3_c_2_z_5.czi"))
    whole = czi.compute()
    image = tw.map(lambda v: v, czi, meta={"ome_zarr": {"version": version, "levels": 2}})
    out = tmp_path / "czi.ome.zarr"
    tw.save(image, out, tile={"t": 1, "z": 2, "y": 64, "x": 128}, executor="threads",
            workers=2)
    group = zarr.open_group(out, mode="r")
    (ImageV05 if version == "0.5" else ImageV04).from_zarr(group)
    fmt = FormatV05() if version == "0.5" else FormatV04()
    node = next(iter(Reader(parse_url(str(out), fmt=fmt))()))
    assert [d.shape for d in node.data] == [(3, 2, 5, 170, 240), (3, 2, 5, 85, 120),
                                            (3, 2, 5, 43, 60)]
    for k, level in enumerate(node.data):
        np.testing.assert_array_equal(np.asarray(level), reference_level(whole, (3, 4), k,
                                                                         "mean"), strict=True)
    assert node.metadata["channel_names"] == ["LED555", "LED470"]
    size = czi.meta["physical"]["x"]["size"]
    assert size == pytest.approx(0.0906, abs=1e-4)
    scale = node.metadata["coordinateTransformations"][2][0]["scale"]
    assert scale == pytest.approx([1.0, 1.0, 0.32, 4 * size, 4 * size], rel=1e-12)
    axes = node.metadata["axes"]
    assert [a.get("unit") for a in axes] == [None, None, "micrometer", "micrometer",
                                             "micrometer"]


def test_nearest_levels_keep_the_origin_and_read_back_with_tilewise(tmp_path):
    labels = np.random.default_rng(3).integers(0, 7, (1, 66, 70)).astype("uint8")
    out = tmp_path / "labels.ome.zarr"
    tw.save(with_options(labels, "zyx", levels=2, method="nearest"), out)
    _, multiscale = levels_of(out)
    second = multiscale["datasets"][2]["coordinateTransformations"]
    assert second[1]["translation"] == [5.0, -1.5, 2.25]
    back = tw.open(out, level=2)
    assert back.shape == (1, 17, 18) and back.axes == ("z", "y", "x")
    assert back.meta["physical"]["y"] == {"size": pytest.approx(0.0906 * 4),
                                          "unit": "micrometer", "origin": -1.5}
    np.testing.assert_array_equal(back.compute(), labels[:, ::4, ::4], strict=True)
    np.testing.assert_array_equal(tw.open(out).compute(), labels, strict=True)


def test_real_nuclei_stack_with_a_3d_pyramid_equals_rebin(tmp_path):
    """Level k of a mean pyramid over z, y and x is the library's `rebin` by 2**k, rounded."""
    a = tifffile.imread(data_path("microscopy", "nuclei.tif"))[:32]
    image = with_options(a, "zyx", levels=2, scaled_axes="zyx")
    out = tmp_path / "nuclei.ome.zarr"
    tw.save(image, out, executor="processes", workers=2)
    got, _ = levels_of(out)
    assert [g.shape for g in got] == [(32, 256, 256), (16, 128, 128), (8, 64, 64)]
    for k in (1, 2):
        rebinned = ops.rebin(tw.open(a, axes="zyx"), factors=2**k, how="mean").compute()
        np.testing.assert_array_equal(got[k], np.floor(rebinned + 0.5).astype("uint16"),
                                      strict=True)
        np.testing.assert_array_equal(got[k], reference_level(a, (0, 1, 2), k, "mean"),
                                      strict=True)
    np.testing.assert_array_equal(got[0], a, strict=True)


def test_pyramid_reduces_a_tile_in_slabs_as_it_does_at_once(monkeypatch):
    from tilewise.io import pyramid

    a = np.random.default_rng(4).integers(0, 60000, (2, 64, 40)).astype("uint16")
    levels = Pyramid(3, (1, 2), "mean", None)
    once = levels.reduce(a)
    monkeypatch.setattr(pyramid, "SLAB", 1)
    for g, w in zip(levels.reduce(a), once, strict=True):
        np.testing.assert_array_equal(g, w, strict=True)


def test_the_sink_and_its_tiles_follow_the_pyramid(tmp_path):
    assert sink_class(str(tmp_path / "a.ome.zarr")) is OMEZarrSink
    meta = {"ome_zarr": {"levels": 4}}
    # Tiles are multiples of 64 * 2**4 along y and x: every level is cut into whole chunks.
    assert OMEZarrSink.planned_chunks((5, 3000, 3000), ("z", "y", "x"), meta) == (4, 1024, 1024)
    assert OMEZarrSink.planned_chunks((3000, 600), ("y", "x"), meta) == (1024, 600)
    sink = OMEZarrSink(str(tmp_path / "a.ome.zarr"), (5, 3000, 3000), np.dtype("uint16"),
                       ("z", "y", "x"), (4, 1024, 1024), meta)
    assert [sink.level_chunks(k) for k in range(5)] == [
        (4, 256, 256), (4, 128, 128), (4, 64, 64), (4, 64, 64), (4, 64, 64)]


@pytest.mark.parametrize("options,message", [
    ({"version": "0.3"}, r"version must be one of 0\.5, 0\.4, not '0\.3'"),
    ({"method": "cubic"}, r"method must be one of mean, nearest, not 'cubic'"),
    ({"levels": -1}, r"levels must be an integer from 0 to 16, not -1"),
    ({"scaled_axes": "cx"}, r"scaled_axes must name spatial axes"),
    ({"level": 2}, r"has no option 'level'"),
])
def test_bad_options_are_refused_before_any_work(tmp_path, options, message):
    image = with_options(np.zeros((3, 40, 40), "uint8"), "cyx", **options)
    with pytest.raises(tw.ParameterError, match=r"a\.ome\.zarr: ome_zarr " + message):
        tw.save(image, tmp_path / "a.ome.zarr")
    assert list(tmp_path.iterdir()) == []


def test_tiles_that_split_pyramid_blocks_and_bad_axes_are_refused(tmp_path):
    image = with_options(np.zeros((100, 100), "uint8"), "yx", levels=3)
    with pytest.raises(tw.ParameterError, match=r"a pyramid of 3 levels needs tiles along "
                                                r"'y' that are multiples of 8 pixels, not 20"):
        tw.save(image, tmp_path / "a.ome.zarr", tile=20)
    with pytest.raises(tw.UnsupportedFormatError, match=r"in the order t, c, z, y, x, not "
                                                        r"\('x', 'y'\)"):
        tw.save(tw.open(np.zeros((4, 4)), axes="xy"), tmp_path / "b.ome.zarr")
    physical = {"y": {"size": 1.0, "unit": "um", "origin": 0.0}}
    with pytest.raises(tw.UnsupportedFormatError, match=r"c\.ome\.zarr: the unit 'um' of axis "
                                                        r"'y' is none that OME-NGFF names"):
        tw.save(tw.open(np.zeros((4, 4)), meta={"physical": physical}), tmp_path / "c.ome.zarr")
    assert list(tmp_path.iterdir()) == []


def test_other_options_on_a_resumed_output_are_refused(tmp_path):
    a = np.arange(64 * 64, dtype="float32").reshape(64, 64)

    def fails_once(v, *, tile):
        if tile.index == (1, 1) and not tile.probe:
            raise ValueError("disk of the imagination is full")
        return v

    out = tmp_path / "a.ome.zarr"
    with pytest.raises(tw.TileError):
        tw.save(tw.map(fails_once, with_options(a, "yx", levels=1)), out, tile=32)
    with pytest.raises(tw.OutputExistsError, match=r"the output changed from OMEZarrSink "
                                                   r"float32 chunks \[32, 32\] version=\"0\.5\" "
                                                   r"levels=1 .* levels=2"):
        tw.save(tw.map(fails_once, with_options(a, "yx", levels=2)), out, tile=32)


CHILD = """
import sys, time
import numpy as np
import tifffile
import tilewise as tw

def slow(a):
    time.sleep(0.02)
    return a

if __name__ == "__main__":
    a = tifffile.imread(sys.argv[1])[:40]
    image = tw.open(a, axes="zyx", meta={"ome_zarr": {"levels": 2, "scaled_axes": "zyx"}})
    tw.save(tw.map(slow, image), "nuclei.ome.zarr", tile={"z": 8, "y": 64, "x": 64},
            workers=2, progress=False)
"""




def test_killed_run_resumes_to_the_same_levels(tmp_path):
    nuclei = data_path("microscopy", "nuclei.tif")
    (tmp_path / "child.py").write_text(CHILD)
    log = tmp_path / "nuclei.ome.zarr.journal"
    for target in (20, 55):  # of 80 tiles
        proc = launch_child(tmp_path, nuclei)
        while tiles_journaled(log) < target and proc.poll() is None:
            time.sleep(0.005)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert not (tmp_path / "nuclei.ome.zarr").exists()
        assert (tmp_path / "nuclei.ome.zarr.partial").is_dir()
    final = launch_child(tmp_path, nuclei)
    assert final.wait(300) == 0, final.stderr.read()
    assert '{"run": 3' in log.read_text()
    a = tifffile.imread(nuclei)[:40]
    got, _ = levels_of(tmp_path / "nuclei.ome.zarr")
    for k, level in enumerate(got):
        np.testing.assert_array_equal(level, reference_level(a, (0, 1, 2), k, "mean"),
                                      strict=True)
    ImageV05.from_zarr(zarr.open_group(tmp_path / "nuclei.ome.zarr", mode="r"))


def test_the_docs_example_runs(tmp_path, monkeypatch):
    czi = data_path("microscopy", "CD_s_1_t_3_c_2_z_5.czi")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    with open(os.path.join(root, "docs", "ome-zarr.md")) as f:
        code = re.search(r"```python\n(.*?)```", f.read(), re.S).group(1)
    monkeypatch.chdir(tmp_path)
    exec(compile(code.replace("../shared/data/microscopy/CD_s_1_t_3_c_2_z_5.czi", czi),
                 "docs/ome-zarr.md", "exec"), {})
    assert tw.open(tmp_path / "blurred.ome.zarr", level=2).shape == (3, 2, 5, 43, 60)
