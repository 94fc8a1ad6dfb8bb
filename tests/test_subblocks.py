"""A tile's op chain evaluated in sub-blocks gives the whole-array result bit for bit, whatever
the sub-block side (down to one pixel, far smaller than the halos), tile, executor and grid."""

import numpy as np
import pytest
from conftest import above_resident
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opslib import correlate, flip_rows, flipped_rows, minimum, rebin, sobels
from test_exact import make, reference_chain, tiled_chain

import tilewise as tw
from tilewise import speed, subblocks
from tilewise.pipeline import Pipeline
from tilewise.regions import Box

SETTINGS = settings(max_examples=25, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(st.integers(1, 50), st.integers(1, 50), st.integers(1, 52), st.integers(1, 52),
       st.integers(1, 9), st.integers(0, 12), st.integers(0, 6),
       st.sampled_from(["uint8", "int16", "float32", "float64"]),
       st.sampled_from(["serial", "threads", "processes"]))
def test_sub_blocks_are_exact(h, w, ty, tx, block, r1, r2, dtype, executor):
    """Margins up to 12 + 6 around sub-blocks from 1 pixel: every halo is wider than many of
    the sub-blocks it surrounds."""
    a = make((h, w), dtype, seed=7)
    got = tw.compute(tiled_chain(tw.open(a), r1, r2), executor=executor, workers=2,
                     tile=(ty, tx), block=block)
    np.testing.assert_array_equal(got, reference_chain(a, r1, r2), strict=True)


@settings(max_examples=15, deadline=None)
@given(st.integers(2, 20), st.integers(2, 24), st.integers(2, 24), st.integers(1, 9),
       st.integers(1, 5))
def test_sub_blocks_in_three_dimensions(z, y, x, t, block):
    a = make((z, y, x), "float32", seed=8)
    img = tw.open(a, axes="zyx")
    got = tw.compute(tiled_chain(img, 3, 1), executor="threads", tile=t, block=block)
    np.testing.assert_array_equal(got, reference_chain(a, 3, 1), strict=True)


@pytest.mark.parametrize("executor", ["serial", "threads", "processes"])
def test_sub_blocks_of_outputs_on_two_grids_and_two_outputs(tmp_path, executor):
    """A rebinning by 3 x 2 needs sub-blocks in whole output pixels; an op with two outputs
    fills both from every sub-block."""
    a = make((61, 47), "int16", seed=9)
    smooth = tw.map(correlate, tw.open(a), margin=3, radius=3)
    gy, gx = tw.map(sobels, smooth, margin=1, dtype="float32", outputs=2)
    paths = [tmp_path / "gy.npy", tmp_path / "gx.zarr", tmp_path / "coarse.npy"]
    tw.save([gy, gx, rebin(smooth)], paths, executor=executor, workers=2,
            tile={"y": 30, "x": 20}, block=4)
    ref = correlate(a, radius=3).astype("int16")
    ref_gy, ref_gx = (x.astype("float32") for x in sobels(ref))
    np.testing.assert_array_equal(np.load(paths[0]), ref_gy, strict=True)
    np.testing.assert_array_equal(tw.open(str(paths[1])).compute(), ref_gx, strict=True)
    h, w = a.shape[0] // 3 * 3, a.shape[1] // 2 * 2
    coarse = ref[:h, :w].reshape(h // 3, 3, w // 2, 2).sum(axis=(1, 3)).astype("float64")
    np.testing.assert_array_equal(np.load(paths[2]), coarse, strict=True)


def test_sub_blocks_of_an_op_with_a_footprint_function():
    a = make((23, 17), "int16", seed=4)
    flipped = tw.map(flip_rows, tw.open(a), footprint=flipped_rows(a.shape))
    got = tw.compute(tw.map(minimum, flipped, margin=2, radius=2), tile=11, block=3)
    np.testing.assert_array_equal(got, minimum(a[::-1], radius=2), strict=True)


def test_sub_blocks_cover_the_tile_in_whole_output_pixels():
    a = np.zeros((61, 47))
    img = tw.map(np.asarray, tw.open(a))
    pipeline = Pipeline.of([img, rebin(img)])
    tile = Box((30, 20), (60, 40))
    blocks = subblocks.split(pipeline, tile, 4)
    assert {b.shape for b in blocks} == {(6, 4)}  # 4 rounded up to whole 3 x 2 pixels
    assert sum(b.size for b in blocks) == tile.size
    assert subblocks.split(pipeline, tile, None) == [tile]


def test_plan_shows_the_sub_blocks_chosen_and_why(tmp_path, monkeypatch):
    from tilewise.run import plan
    from tilewise.summary import describe

    # The measurement is skipped when it would cost more than a share of the run; allow it
    # whatever the load of the machine running the test.
    monkeypatch.setattr(speed, "LEAST_SECONDS", 60.0)
    monkeypatch.setattr(speed, "MOST_SHARE", 1e6)
    img = tw.open(make((2048, 2048), "float32", seed=1))
    chain = tiled_chain(img, 4, 2)
    measured = describe(plan(chain, tmp_path / "a.zarr", memory=above_resident("512MiB"),
                             executor="threads", workers=2))
    line = next(x for x in measured if x.startswith("compute"))
    assert "ns per pixel on a" in line and "128:" in line and "whole:" in line
    given_side = describe(plan(chain, tmp_path / "a.zarr", memory=above_resident("512MiB"),
                               executor="threads", workers=2, tile=512, block=128))
    assert "compute    in sub-blocks of 128 x 128 (given)" in given_side
    whole = describe(plan(chain, tmp_path / "a.zarr", memory=above_resident("512MiB"),
                          executor="threads", workers=2, tile=512, block=0))
    assert "compute    each tile whole (given)" in whole


def test_a_bad_block_is_refused(tmp_path):
    with pytest.raises(tw.ParameterError, match="block must be a non-negative integer"):
        tw.save(tw.open(np.zeros((8, 8))), tmp_path / "x.npy", block=-1)


def test_sub_blocks_are_not_timed_where_their_halos_would_be_recomputed_many_times():
    """A halo of 300 pixels around sub-blocks of at most 512: they would compute 1.6x the
    pixels of a 1024 x 1024 box whole, more than sub-blocks can ever win back (MSTP's 2,023
    pixels made its planning time sub-blocks for 7 s of a 36 s run)."""
    wide = tw.map(minimum, tw.open(make((2048, 2048), "float32", seed=1)), margin=300,
                  radius=300)
    pipeline = Pipeline.of([wide])
    assert subblocks.recomputed(pipeline, Box((512, 512), (1536, 1536)), 512) > 1.5
    found = speed.measure(pipeline)
    assert found.per_pixel == {} and found.side is None
    assert "sub-blocks would compute 1.6x the pixels, halos recomputed" in found.note


def test_sub_blocks_recompute_no_pixels_without_a_halo():
    pipeline = Pipeline.of([tw.map(np.negative, tw.open(np.zeros((40, 30))))])
    assert subblocks.recomputed(pipeline, Box((0, 0), (40, 30)), 8) == 1.0
