"""Block-wise reads assemble exactly the window a direct read gives, cached or not."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from tilewise.io import blocks
from tilewise.regions import Box


@st.composite
def windows(draw):
    ndim = draw(st.integers(1, 3))
    shape = tuple(draw(st.integers(1, 30)) for _ in range(ndim))
    block = tuple(draw(st.integers(1, n)) for n in shape)
    boxes = []
    for _ in range(draw(st.integers(1, 6))):
        start = tuple(draw(st.integers(0, n - 1)) for n in shape)
        stop = tuple(draw(st.integers(a + 1, n)) for a, n in zip(start, shape, strict=True))
        boxes.append(Box(start, stop))
    return shape, block, boxes


@settings(max_examples=150, deadline=None)
@given(windows(), st.integers(0, 10**6))
def test_blocked_reads_equal_direct_reads(case, capacity):
    shape, block, boxes = case
    image = np.arange(np.prod(shape), dtype="int32").reshape(shape)
    calls = []

    def read(box):
        calls.append(box)
        return image[box.slices].copy()

    blocks.cache.clear()
    old = blocks.cache.capacity
    blocks.cache.capacity = capacity
    try:
        for box in boxes:
            got = blocks.read_blocked(("test", id(image)), box, shape, block, image.dtype, read)
            np.testing.assert_array_equal(got, image[box.slices])
        assert blocks.cache.used <= capacity
    finally:
        blocks.cache.capacity = old
        blocks.cache.clear()


def test_a_shared_halo_block_is_decoded_once():
    shape, block = (8, 16), (8, 4)
    image = np.arange(128, dtype="float32").reshape(shape)
    decoded = []

    def read(box):
        decoded.append(box)
        return image[box.slices].copy()

    blocks.cache.clear()
    left = blocks.read_blocked("img", Box((0, 0), (8, 9)), shape, block, image.dtype, read)
    right = blocks.read_blocked("img", Box((0, 7), (8, 16)), shape, block, image.dtype, read)
    blocks.cache.clear()
    np.testing.assert_array_equal(left, image[:, :9])
    np.testing.assert_array_equal(right, image[:, 7:])
    # Left: block 2 is partial (decoded, cached), blocks 0-1 whole (one read). Right: block 1 is
    # partial and was not cached (it was whole for the left window), block 2 comes from the
    # cache, block 3 is whole.
    assert decoded == [Box((0, 8), (8, 12)), Box((0, 0), (8, 8)), Box((0, 4), (8, 8)),
                       Box((0, 12), (8, 16))]
