"""The planner weighs a halo's recomputation against idle workers (`plan.waves`): the tiles of
an op whose halo is as wide as the image each recompute nearly the whole image, so one tile per
worker finishes sooner than the usual several per worker; with a small halo the usual rule
stands."""

import numpy as np
import pytest
import zarr

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


def test_waves_count_the_halo_recomputed_in_each_wave(dem):
    """A central tile's region stands for every tile's."""
    pipeline = Pipeline.of([tw.Op(copy, margin=700)(tw.open(dem))])
    # Two tiles of 1024 x 2048: one wave of two workers, each reading the whole image.
    assert planning.waves(pipeline, (1024, 2048), 2) == 2048 * 2048
    # Eight of 512 x 1024: four waves, a central tile reading rows 68 to 1980.
    assert planning.waves(pipeline, (512, 1024), 2) == 4 * 1912 * 2048
    # With a halo of 2 the estimate hardly changes with the tile: the usual rule decides.
    small = Pipeline.of([tw.Op(copy, margin=2)(tw.open(dem))])
    assert planning.waves(small, (512, 1024), 2) == 4 * 516 * 1028
