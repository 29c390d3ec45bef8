"""Tests of kdrepro.data.jitter: random translations by up to k pixels ("jittered", section 3)."""

from __future__ import annotations

from collections import Counter

import pytest
import torch

from kdrepro.data.jitter import Jitter


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def shifted(image: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """Reference: `image` moved down by dy and right by dx, zeros shifted in."""
    out = torch.zeros_like(image)
    h, w = image.shape
    src = image[max(0, -dy):h - max(0, dy), max(0, -dx):w - max(0, dx)]
    out[max(0, dy):max(0, dy) + src.shape[0], max(0, dx):max(0, dx) + src.shape[1]] = src
    return out


def matching_shifts(original: torch.Tensor, moved: torch.Tensor, search: int) -> list:
    return [(dy, dx) for dy in range(-search, search + 1) for dx in range(-search, search + 1)
            if torch.equal(shifted(original, dy, dx), moved)]


def random_images(n: int, seed: int = 0) -> torch.Tensor:
    # Pixels 1..255 everywhere, so every shift of an image is distinguishable.
    return torch.randint(1, 256, (n, 28, 28), generator=gen(seed), dtype=torch.uint8)


def blob_images(n: int) -> torch.Tensor:
    images = torch.zeros(n, 28, 28, dtype=torch.uint8)
    for i in range(n):
        images[i, 10:18, 11:17] = torch.arange(1, 49, dtype=torch.uint8).view(8, 6) + i
    return images


def test_reference_shift_helper():
    image = torch.arange(9, dtype=torch.uint8).view(3, 3)
    assert shifted(image, 1, 0).tolist() == [[0, 0, 0], [0, 1, 2], [3, 4, 5]]
    assert shifted(image, 0, -1).tolist() == [[1, 2, 0], [4, 5, 0], [7, 8, 0]]


@pytest.mark.parametrize("k", [1, 2, 3])
def test_every_image_moves_by_at_most_k_pixels(k):
    images = random_images(40)
    jitter = Jitter(images, k)
    index = torch.arange(40)
    out = jitter(index, gen(1))
    assert out.shape == (40, 28, 28) and out.dtype == torch.uint8
    for i in range(40):
        # Search a wider window than k, so a shift beyond k would be found and fail.
        found = matching_shifts(images[i], out[i], k + 2)
        assert len(found) == 1, (i, found)
        dy, dx = found[0]
        assert abs(dy) <= k and abs(dx) <= k


def test_take_moves_down_by_dy_and_right_by_dx():
    images = random_images(6, seed=2)
    jitter = Jitter(images, 2)
    shifts = torch.tensor([[0, 0], [1, 0], [0, 1], [-2, 2], [2, -1], [-1, -2]])
    index = torch.tensor([0, 1, 2, 3, 4, 5])
    out = jitter.take(index, shifts)
    for i, (dy, dx) in enumerate(shifts.tolist()):
        assert torch.equal(out[i], shifted(images[i], dy, dx)), (dy, dx)


def test_call_uses_the_drawn_shifts_and_index_order():
    images = random_images(10, seed=3)
    jitter = Jitter(images, 2)
    index = torch.tensor([7, 7, 0, 3, 9])
    out = jitter(index, gen(4))
    shifts = jitter.shifts(len(index), gen(4))
    assert shifts.shape == (5, 2)
    assert int(shifts.abs().max()) <= 2
    for row, (i, (dy, dx)) in enumerate(zip(index.tolist(), shifts.tolist())):
        assert torch.equal(out[row], shifted(images[i], dy, dx))


@pytest.mark.parametrize("k", [1, 2, 4, 8])
def test_pixel_sum_preserved_when_the_digit_stays_inside(k):
    images = blob_images(20)  # content in rows 10..17, cols 11..16: >= 10 px from the edges
    out = Jitter(images, k)(torch.arange(20), gen(5))
    assert torch.equal(out.sum((1, 2), dtype=torch.int64), images.sum((1, 2), dtype=torch.int64))
    assert torch.equal(out.flatten(1).sort(1).values, images.flatten(1).sort(1).values)


def test_content_pushed_past_the_edge_is_cut_and_zeros_come_in():
    images = torch.full((1, 28, 28), 200, dtype=torch.uint8)
    out = Jitter(images, 2).take(torch.tensor([0]), torch.tensor([[2, -1]]))[0]
    assert (out[:2] == 0).all() and (out[:, -1:] == 0).all()
    assert (out[2:, :-1] == 200).all()


def test_k0_is_the_identity():
    images = random_images(12, seed=6)
    index = torch.tensor([3, 1, 4, 1, 5, 9, 2, 6])
    out = Jitter(images, 0)(index, gen(7))
    assert torch.equal(out, images[index])


def test_negative_jitter_raises():
    with pytest.raises(ValueError, match="-1"):
        Jitter(random_images(2), -1)


def test_deterministic_for_a_seeded_generator():
    images = random_images(30, seed=8)
    index = torch.arange(30)
    a = Jitter(images, 2)(index, gen(9))
    b = Jitter(images, 2)(index, gen(9))
    c = Jitter(images, 2)(index, gen(10))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_all_25_shifts_occur_roughly_uniformly_for_k2():
    image = torch.zeros(1, 28, 28, dtype=torch.uint8)
    image[0, 14, 14] = 255
    draws = 2500
    out = Jitter(image, 2)(torch.zeros(draws, dtype=torch.long), gen(11))
    flat = out.flatten(1)
    assert bool((flat.max(1).values == 255).all())
    assert bool(((flat > 0).sum(1) == 1).all())
    position = flat.argmax(1)
    counts = Counter(zip((position // 28 - 14).tolist(), (position % 28 - 14).tolist()))
    assert set(counts) == {(dy, dx) for dy in range(-2, 3) for dx in range(-2, 3)}
    # Expected 100 each; std ~10, so 60..140 is a 4-sigma band.
    assert min(counts.values()) >= 60 and max(counts.values()) <= 140, counts
    # dy and dx are drawn independently of each other.
    dys = Counter(dy for dy, _ in counts.elements())
    assert all(400 <= c <= 600 for c in dys.values()), dys


def test_works_for_a_subset_index_of_a_large_set():
    images = random_images(300, seed=12)
    index = torch.tensor([0, 299, 150])
    out = Jitter(images, 3)(index, gen(13))
    for row, i in enumerate(index.tolist()):
        assert len(matching_shifts(images[i], out[row], 3)) == 1
