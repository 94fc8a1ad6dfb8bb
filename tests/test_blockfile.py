"""The GeoTIFF sink's staging file: tiles written in any split read back as the image's blocks."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from tilewise.io.blockfile import BlockFile, BlockReader
from tilewise.regions import Box


@st.composite
def cases(draw):
    bands = draw(st.sampled_from([(), (1,), (3,)]))
    height, width = draw(st.integers(1, 70)), draw(st.integers(1, 70))
    by, bx = draw(st.sampled_from([4, 16, 32])), draw(st.sampled_from([8, 16, 48]))
    # Tiles on the block grid (what the planner makes) or any size (a user's tile=).
    ty = draw(st.sampled_from([by, 2 * by, 3, 7, 20]))
    tx = draw(st.sampled_from([bx, 3 * bx, 5, 11, 33]))
    dtype = draw(st.sampled_from(["float32", "uint8", "int16", "float64"]))
    return bands, (height, width), (by, bx), (ty, tx), np.dtype(dtype)


@settings(max_examples=60, deadline=None)
@given(cases(), st.randoms(use_true_random=False))
def test_tiles_in_any_order_read_back_as_blocks(tmp_path_factory, case, random):
    bands, (height, width), (by, bx), (ty, tx), dtype = case
    shape = (*bands, height, width)
    image = (np.arange(np.prod(shape)) % 251 + 1).astype(dtype).reshape(shape)
    blocks = BlockFile(str(tmp_path_factory.mktemp("b") / "blocks.raw"), shape,
                       (*bands, by, bx), dtype)
    blocks.create()
    tiles = [(y, x) for y in range(0, height, ty) for x in range(0, width, tx)]
    random.shuffle(tiles)
    for y, x in tiles:
        box = Box((*(0 for _ in bands), y, x),
                  (*bands, min(y + ty, height), min(x + tx, width)))
        blocks.write(box, image[box.slices])
    blocks.close()
    with BlockReader(blocks) as reader:
        for i in range(-(-height // by)):
            for j in range(-(-width // bx)):
                got = reader.read(i, j)
                want = image[..., i * by:(i + 1) * by, j * bx:(j + 1) * bx]
                np.testing.assert_array_equal(got, want, strict=True)
