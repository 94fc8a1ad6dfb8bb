import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tilewise.regions import Box, TileGrid

shapes = st.lists(st.integers(1, 14), min_size=1, max_size=4).map(tuple)


@given(shapes, st.data())
def test_tiles_cover_the_shape_exactly_once(shape, data):
    tile = tuple(data.draw(st.integers(1, n + 3)) for n in shape)
    grid = TileGrid(shape, tile)
    hits = np.zeros(shape, int)
    for box in grid:
        hits[box.slices] += 1
    assert (hits == 1).all()
    assert len(grid) == len(list(grid.indices()))


def test_grid_is_lazy_for_a_huge_plan():
    grid = TileGrid((10**9, 10**9), (1, 1))
    assert len(grid) == 10**18
    assert next(iter(grid)) == Box((0, 0), (1, 1))


def test_grow_intersect_union_within():
    box = Box((2, 3), (5, 7))
    assert box.grow((1, 2)) == Box((1, 1), (6, 9))
    clipped = box.grow((5, 5)).intersect(Box.of_shape((6, 8)))
    assert clipped == Box((0, 0), (6, 8))
    assert box.union(Box((0, 6), (1, 10))) == Box((0, 3), (5, 10))
    assert box.within(clipped) == (slice(2, 5), slice(3, 7))
    assert box.shape == (3, 4) and box.size == 12 and str(box) == "[2:5, 3:7]"
    with pytest.raises(ValueError):
        clipped.within(box)


def test_disjoint_intersection_is_empty():
    assert Box((0,), (3,)).intersect(Box((5,), (9,))).size == 0


def test_invalid_boxes_and_grids_are_refused():
    with pytest.raises(ValueError):
        Box((3,), (2,))
    with pytest.raises(ValueError):
        TileGrid((4, 4), (0, 2))
