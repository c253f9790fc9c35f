import torch

from airbench_core.loader import TrainLoader, cutout, flip_mask, translate


def distinct_images(n: int) -> torch.Tensor:
    """Images whose mirror differs from themselves, so a flip is always visible."""
    g = torch.Generator().manual_seed(1)
    return torch.randn(n, 3, 32, 32, generator=g)


def make_loader(images: torch.Tensor, flip: str, pad: int = 0) -> TrainLoader:
    labels = torch.zeros(len(images), dtype=torch.long)
    return TrainLoader(
        images,
        labels,
        batch_size=50,
        flip=flip,
        translate_pad=pad,
        cutout_size=0,
        order_gen=torch.Generator().manual_seed(2),
        aug_gen=torch.Generator().manual_seed(3),
    )


def flipped_in_epoch(loader: TrainLoader, epoch: int) -> torch.Tensor:
    out = loader.augment(epoch)
    is_flipped = (out == loader.images.flip(-1)).flatten(1).all(1)
    is_plain = (out == loader.images).flatten(1).all(1)
    assert bool((is_flipped ^ is_plain).all()), "every image is either exactly mirrored or exactly not"
    return is_flipped


def test_alternating_flip_shows_each_image_both_ways_over_consecutive_epochs():
    loader = make_loader(distinct_images(400), "alternating")
    masks = [flipped_in_epoch(loader, e) for e in range(6)]
    assert 0.4 < masks[0].float().mean() < 0.6  # first epoch: one fair coin per image
    for a, b in zip(masks, masks[1:]):
        assert bool((a ^ b).all())  # each pair: once flipped, once not


def test_random_flip_is_half_and_independent_across_epochs():
    loader = make_loader(distinct_images(2000), "random")
    masks = [flipped_in_epoch(loader, e) for e in range(4)]
    for m in masks:
        assert 0.45 < m.float().mean() < 0.55
    for a, b in zip(masks, masks[1:]):
        agree = (a == b).float().mean()
        assert 0.45 < agree < 0.55, "independent epochs agree on about half of the images"


def test_no_flip_leaves_images_alone():
    loader = make_loader(distinct_images(100), "none")
    assert not flipped_in_epoch(loader, 0).any() and not flipped_in_epoch(loader, 1).any()


def test_flip_mask_formula_is_coin_xor_epoch_parity():
    coins = torch.tensor([True, False, True, False])
    g = torch.Generator().manual_seed(0)
    assert flip_mask("alternating", 0, coins, g).tolist() == coins.tolist()
    assert flip_mask("alternating", 3, coins, g).tolist() == (~coins).tolist()
    assert flip_mask("alternating", 4, coins, g).tolist() == coins.tolist()


def test_translation_shifts_each_image_within_two_pixels_and_varies_by_epoch():
    images = distinct_images(300)
    out = translate(images, 2, torch.Generator().manual_seed(0))
    padded = torch.nn.functional.pad(images, (2,) * 4, mode="reflect")
    found = []
    for i in range(len(images)):
        matches = [
            (dy, dx)
            for dy in range(5)
            for dx in range(5)
            if torch.equal(out[i], padded[i, :, dy : dy + 32, dx : dx + 32])
        ]
        assert len(matches) == 1
        found.append(matches[0])
    assert len(set(found)) == 25, "all 25 offsets occur"
    again = translate(images, 2, torch.Generator().manual_seed(1))
    assert not torch.equal(out, again)


def test_cutout_zeroes_one_square_per_image_fully_inside_it():
    images = distinct_images(400)
    out = cutout(images, 12, torch.Generator().manual_seed(0))
    zero = (out == 0).all(1)  # n, 32, 32
    rows, cols = zero.any(2), zero.any(1)
    assert bool((zero.flatten(1).sum(1) == 144).all())
    assert torch.equal(zero, rows[:, :, None] & cols[:, None, :]), "one 12x12 square"
    keep = ~zero[:, None].expand_as(out)
    assert torch.equal(out[keep], images[keep]), "nothing else changes"
    top, left = rows.float().argmax(1), cols.float().argmax(1)
    assert top.min() == left.min() == 0 and top.max() == left.max() == 20, "anywhere inside the image"


def test_loader_drops_last_partial_batch_and_covers_each_image_once_per_epoch():
    images = distinct_images(130)
    loader = TrainLoader(
        images,
        torch.arange(130),
        batch_size=50,
        flip="none",
        translate_pad=0,
        cutout_size=0,
        order_gen=torch.Generator().manual_seed(0),
        aug_gen=torch.Generator().manual_seed(0),
    )
    batches = list(loader.epoch(0))
    assert [len(b[1]) for b in batches] == [50, 50]
    seen = torch.cat([b[1] for b in batches])
    assert len(set(seen.tolist())) == 100
    for x, y in batches:
        assert torch.equal(x, images[y])
