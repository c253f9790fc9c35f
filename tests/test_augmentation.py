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


def make_new_loader(images: torch.Tensor, pad: int = 0, **kw) -> TrainLoader:
    return TrainLoader(
        images,
        torch.zeros(len(images), dtype=torch.long),
        batch_size=50,
        flip=kw.pop("flip", "alternating"),
        translate_pad=pad,
        cutout_size=0,
        order_gen=torch.Generator().manual_seed(2),
        aug_gen=torch.Generator().manual_seed(3),
        **kw,
    )


def test_flip_switch_epoch_flips_at_random_before_it_then_alternates_from_the_last_random_epoch():
    k = 3
    loader = make_new_loader(distinct_images(2000), flip_switch_epoch=k)
    masks = [flipped_in_epoch(loader, e) for e in range(7)]
    for a, b in zip(masks[:k], masks[1:k]):  # before k: independent fair coins every epoch
        assert 0.45 < a.float().mean() < 0.55 and 0.45 < (a == b).float().mean() < 0.55
    for e in range(k, 7):  # from k on: each image the opposite way from its previous epoch
        assert bool((masks[e] ^ masks[e - 1]).all())
    assert not torch.equal(masks[k - 1], loader.coins) and not torch.equal(masks[k - 1], ~loader.coins)


def test_flip_switch_epoch_0_is_alternating_flip_exactly_as_before():
    images = distinct_images(300)
    old, new = make_loader(images, "alternating", pad=2), make_new_loader(images, pad=2, flip_switch_epoch=0)
    for e in range(3):
        assert torch.equal(old.augment(e), new.augment(e))


def offsets_seen(loader: TrainLoader, epoch: int, pad: int) -> list[tuple[int, int]]:
    """The (row, column) crop offset each image actually got in ``epoch``."""
    out = loader.augment(epoch)
    padded = torch.nn.functional.pad(loader.images, (pad,) * 4, mode="reflect")
    side = 2 * pad + 1
    seen = []
    for i in range(len(out)):
        (match,) = [
            (dy, dx)
            for dy in range(side)
            for dx in range(side)
            if torch.equal(out[i], padded[i, :, dy : dy + 32, dx : dx + 32])
        ]
        seen.append(match)
    return seen


def test_alternating_translation_shows_each_image_every_offset_once_per_cycle():
    pad, n = 1, 60
    loader = make_new_loader(distinct_images(n), pad=pad, flip="none", translate_mode="alternating")
    per_epoch = [offsets_seen(loader, e, pad) for e in range(10)]
    for i in range(n):
        cycle = [per_epoch[e][i] for e in range(9)]
        assert len(set(cycle)) == 9, "nine epochs: all nine offsets, none twice"
        assert per_epoch[9][i] == per_epoch[0][i], "then the same permutation again"
    firsts = {per_epoch[0][i] for i in range(n)}
    assert len(firsts) == 9, "each image has its own order (the first offsets differ across images)"


def test_random_translation_repeats_offsets_and_is_unchanged_by_the_new_field():
    pad, n = 1, 60
    images = distinct_images(n)
    loader = make_new_loader(images, pad=pad, flip="none", translate_mode="random")
    old = make_loader(images, "none", pad=pad)
    assert torch.equal(loader.augment(0), old.augment(0))
    per_epoch = [offsets_seen(loader, e, pad) for e in range(9)]
    repeats = sum(len({per_epoch[e][i] for e in range(9)}) < 9 for i in range(n))
    assert repeats > n * 0.9, "drawn with replacement, almost every image repeats an offset in 9 epochs"


def test_training_passes_the_new_fields_to_the_loader(monkeypatch):
    import importlib

    from airbench_core import TrainConfig

    train_module = importlib.import_module("airbench_core.train")
    seen = {}
    real = train_module.TrainLoader

    def spy(*args):
        seen["args"] = args
        return real(*args)

    monkeypatch.setattr(train_module, "TrainLoader", spy)
    n = 200
    data = train_module.DeviceData(
        distinct_images(n), torch.arange(n) % 10, distinct_images(50), torch.arange(50) % 10
    )
    cfg = TrainConfig(
        epochs=0.5,
        widths=(8, 8, 8),
        batch_size=50,
        whiten_samples=100,
        flip_switch_epoch=2,
        translate_mode="alternating",
    )
    train_module.train(cfg, 0, data)
    assert seen["args"][-2:] == (2, "alternating")


def test_the_new_fields_are_checked():
    import pytest

    from airbench_core import TrainConfig

    with pytest.raises(ValueError, match="translate_mode must be one of random, alternating"):
        TrainConfig(translate_mode="sideways")
    with pytest.raises(ValueError, match="needs flip = alternating"):
        TrainConfig(flip="random", flip_switch_epoch=2)
    with pytest.raises(ValueError, match="flip_switch_epoch must be a whole epoch"):
        TrainConfig(flip_switch_epoch=1.5)
    assert TrainConfig().key(0) == TrainConfig(flip_switch_epoch=0, translate_mode="random").key(0)
