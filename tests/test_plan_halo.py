"""The planner weighs a halo's recomputation against idle workers (`plan.makespan`): the tiles of
an op whose halo is as wide as the image each recompute nearly the whole image, so one tile per
worker finishes sooner than the usual several per worker; with a small halo the usual rule
stands."""

import numpy as np
import pytest
import zarr
from hypothesis import given, settings
from hypothesis import strategies as st

import tilewise as tw
from tilewise import plan as planning
from tilewise.pipeline import Pipeline
from tilewise.run import plan


def copy(a):
    return a.copy()


@pytest.fixture(scope="module")
def dem(tmp_path_factory):
    path = tmp_path_factory.mktemp("plan") / "dem.zarr"
    arr = zarr.create_array(path, shape=(2048, 2048), chunks=(256, 256), dtype="float32")
    arr[:] = np.random.default_rng(0).random((2048, 2048), "float32")
    return path


@pytest.mark.parametrize("margin,tiles", [(700, 2), (2, 2 * planning.TILES_PER_WORKER)])
def test_a_halo_as_wide_as_the_image_gets_one_tile_per_worker(dem, tmp_path, margin, tiles):
    image = tw.Op(copy, margin=margin)(tw.open(dem))
    planned = plan(image, tmp_path / "out.npy", executor="threads", workers=2, memory="2GiB")
    assert len(planned.plan.grid) == tiles
    with_one = plan(image, tmp_path / "one.npy", executor="threads", workers=1,
                    memory="2GiB")
    assert len(with_one.plan.grid) == (1 if margin == 700 else planning.TILES_PER_WORKER)


def test_the_estimate_counts_every_tiles_halo_and_the_largest_tile(dem):
    """Graham's bound: the pixels all windows read over the workers, plus half the largest
    window (2 workers), whose region a central tile stands for."""
    pipeline = Pipeline.of([tw.Op(copy, margin=700)(tw.open(dem))])
    # Two tiles of 1024 x 2048 read rows [0, 1724) and [324, 2048); a central one all rows.
    assert planning.makespan(pipeline, (1024, 2048), 2) == 1724 * 2048 + 2048 * 2048 / 2
    # Eight of 512 x 1024 read 1212, 1724, 1724 and 1212 rows by 1724 columns, each twice;
    # a central one rows 68 to 1980 by all columns.
    eight = planning.makespan(pipeline, (512, 1024), 2)
    assert eight == 5872 * 1724 + 1912 * 2048 / 2
    # With a halo of 2 the total hardly changes with the tile: the largest tile decides, so
    # the estimate never asks for fewer tiles than the usual rule.
    small = Pipeline.of([tw.Op(copy, margin=2)(tw.open(dem))])
    assert planning.makespan(small, (512, 1024), 2) < planning.makespan(small, (1024, 1024), 2)


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 5000), st.integers(1, 5000), st.integers(1, 1024))
def test_an_evened_tile_cuts_as_many_tiles_none_a_sliver(n, k, u):
    """Same count of tiles, none larger, whole units (or the whole axis), and the last short
    of the others by less than a unit per tile: no sliver."""
    (even,) = planning.evened((n,), (min(k, n),), (u,))
    count = -(-n // min(k, n))
    assert -(-n // even) == count and even <= min(k, n)
    assert even % u == 0 or even == min(k, n)
    assert n - (count - 1) * even >= even - u * count or count == 1


def test_workers_share_an_image_that_two_tiles_cut_unevenly(tmp_path):
    """1800 rows, a halo as wide as the image: one tile per worker, grown in doubling units to
    1024 rows, was a tile of 1024 and one of 776; evened, two of 900."""
    image = tw.Op(copy, margin=700)(tw.open(np.zeros((1800, 2048), "float32")))
    planned = plan(image, tmp_path / "o.npy", memory="4GiB", executor="threads", workers=2)
    assert len(planned.plan.grid) == 2 and planned.plan.grid.tile[0] == 900
