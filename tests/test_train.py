"""Tests of kdrepro.training.engine: the one training loop, its schedule, resume and evaluation."""

from __future__ import annotations

import copy
import math

import pytest
import torch
import torch.nn.functional as F

from kdrepro.data.mnist import normalize
from kdrepro.training.checkpoint import FileCheckpoint
from kdrepro.training.engine import (
    TrainConfig,
    TrainingError,
    count_errors,
    error_summary,
    fit,
    predict_logits,
)
from kdrepro.training.losses import hard_label_loss
from kdrepro.training.models import MLP


def toy_data(n: int = 100, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Learnable MNIST-shaped data: faint noise plus a bright 4x4 patch placed by class."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % 10
    labels = labels[torch.randperm(n, generator=g)]
    images = torch.randint(0, 40, (n, 28, 28), generator=g, dtype=torch.uint8)
    for i, c in enumerate(labels.tolist()):
        row, col = 4 + 10 * (c // 4), 3 + 6 * (c % 4)
        images[i, row:row + 4, col:col + 4] = 255
    return images, labels


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def new_model(init_seed: int = 0, **kwargs) -> MLP:
    torch.manual_seed(init_seed)
    return MLP(kwargs.pop("hidden", [16]), **kwargs)


REGULARISED = {"hidden": [16, 16], "input_dropout": 0.2, "hidden_dropout": 0.5, "max_norm": 2.0}


def assert_same_weights(a: MLP, b: MLP) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for key in sa:
        assert torch.equal(sa[key], sb[key]), key


def strip_seconds(history: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k != "seconds"} for r in history]


# ---------------------------------------------------------------- schedule


def test_lr_decays_geometrically_and_momentum_ramps_linearly():
    cfg = TrainConfig(lr=0.2, lr_decay=0.5, momentum_start=0.5, momentum_end=0.9,
                      momentum_ramp_epochs=4)
    assert [cfg.lr_at(e) for e in range(4)] == pytest.approx([0.2, 0.1, 0.05, 0.025])
    assert [cfg.momentum_at(e) for e in range(7)] == pytest.approx(
        [0.5, 0.6, 0.7, 0.8, 0.9, 0.9, 0.9])
    assert TrainConfig(momentum_ramp_epochs=0, momentum_end=0.95).momentum_at(0) == 0.95


def test_cosine_schedule_starts_at_lr_halves_midway_and_anneals_to_near_zero():
    cfg = TrainConfig(epochs=4, lr=0.2, lr_decay=0.5, lr_schedule="cosine")
    # lr_decay is ignored: (1 + cos(pi * e / 4)) / 2 for e = 0..3
    assert [cfg.lr_at(e) for e in range(4)] == pytest.approx(
        [0.2, 0.2 * 0.8535534, 0.1, 0.2 * 0.1464466])
    long = TrainConfig(epochs=100, lr=1.0, lr_schedule="cosine")
    assert long.lr_at(99) < 1e-3 < long.lr_at(90)


def test_history_has_one_record_per_epoch_with_the_schedule():
    images, labels = toy_data(60)
    cfg = TrainConfig(epochs=5, batch_size=20, lr=0.1, lr_decay=0.8, momentum_start=0.5,
                      momentum_end=0.9, momentum_ramp_epochs=2)
    seen = []
    history = fit(new_model(), images, [labels], hard_label_loss, cfg, gen(0),
                  eval_set=(images[:30], labels[:30]), on_epoch=seen.append)
    assert [r["epoch"] for r in history] == [1, 2, 3, 4, 5]
    assert [r["lr"] for r in history] == pytest.approx([0.1 * 0.8**e for e in range(5)])
    assert [r["momentum"] for r in history] == pytest.approx([0.5, 0.7, 0.9, 0.9, 0.9])
    assert seen == history
    for record in history:
        assert set(record) == {"epoch", "loss", "lr", "momentum", "test_errors", "seconds"}
        assert math.isfinite(record["loss"]) and record["loss"] > 0
        assert isinstance(record["test_errors"], int) and 0 <= record["test_errors"] <= 30
        assert record["seconds"] >= 0


def test_history_without_eval_set_has_no_test_errors():
    images, labels = toy_data(40)
    history = fit(new_model(), images, [labels], hard_label_loss,
                  TrainConfig(epochs=2, batch_size=20), gen(0))
    assert len(history) == 2 and all("test_errors" not in r for r in history)


def test_schedule_matches_a_reference_sgd_loop():
    """Full-batch training equals torch SGD with lr and momentum set at each epoch."""
    images, labels = toy_data(50)
    cfg = TrainConfig(epochs=4, batch_size=50, lr=0.3, lr_decay=0.5, momentum_start=0.5,
                      momentum_end=0.9, momentum_ramp_epochs=2, weight_decay=0.01)
    model = new_model(3, hidden=[12])
    reference = copy.deepcopy(model)
    history = fit(model, images, [labels], hard_label_loss, cfg, gen(0))

    optimizer = torch.optim.SGD(reference.parameters(), lr=cfg.lr, momentum=0.5,
                                weight_decay=cfg.weight_decay)
    x = normalize(images)
    losses = []
    for epoch in range(cfg.epochs):
        for group in optimizer.param_groups:
            group["lr"] = cfg.lr * cfg.lr_decay**epoch
            group["momentum"] = min(0.9, 0.5 + 0.2 * epoch)
        optimizer.zero_grad()
        loss = F.cross_entropy(reference(x), labels)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    for p, q in zip(model.parameters(), reference.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-4, atol=1e-5)
    assert [r["loss"] for r in history] == pytest.approx(losses, rel=1e-4)


# ---------------------------------------------------------------- learning


def test_a_tiny_run_lowers_the_loss_and_learns():
    images, labels = toy_data(100)
    model = new_model(hidden=[32])
    cfg = TrainConfig(epochs=6, batch_size=20, lr=0.05, momentum_end=0.9)
    before = F.cross_entropy(predict_logits(model, images), labels).item()
    history = fit(model, images, [labels], hard_label_loss, cfg, gen(0))
    assert history[-1]["loss"] < 0.5 * history[0]["loss"]
    assert F.cross_entropy(predict_logits(model, images), labels).item() < 0.5 * before
    assert count_errors(predict_logits(model, images), labels) <= 10


def test_extra_targets_reach_the_loss_function():
    images, labels = toy_data(40)
    weights = torch.arange(40, dtype=torch.float32)
    seen = []

    def loss_fn(logits, batch_labels, batch_weights):
        seen.append((batch_labels.clone(), batch_weights.clone()))
        return hard_label_loss(logits, batch_labels)

    fit(new_model(), images, [labels, weights], loss_fn, TrainConfig(epochs=1, batch_size=16),
        gen(0))
    assert [len(b) for b, _ in seen] == [16, 16, 8]
    rows = torch.cat([w for _, w in seen]).long()
    assert sorted(rows.tolist()) == list(range(40))  # every row once per epoch
    assert torch.equal(torch.cat([b for b, _ in seen]), labels[rows])  # rows stay aligned


# ---------------------------------------------------------------- determinism


def run(seed: int, epochs: int = 3, init_seed: int = 0, **kw) -> tuple[MLP, list[dict]]:
    images, labels = toy_data(80)
    cfg = TrainConfig(epochs=epochs, batch_size=20, lr=0.05, lr_decay=0.9,
                      momentum_ramp_epochs=2, jitter=2)
    model = new_model(init_seed, **REGULARISED)
    history = fit(model, images, [labels], hard_label_loss, cfg, gen(seed), **kw)
    return model, history


def test_same_seed_gives_bit_identical_weights():
    a, ha = run(5)
    b, hb = run(5)
    assert_same_weights(a, b)
    assert strip_seconds(ha) == strip_seconds(hb)


def test_different_seeds_give_different_weights():
    a, _ = run(5)
    b, _ = run(6)
    assert any(not torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))


def test_max_norm_holds_after_fit():
    model, _ = run(1)
    for layer in model.layers:
        assert layer.weight.norm(dim=1).max().item() <= 2.0 + 1e-5
    images, labels = toy_data(80)
    big = new_model(0, hidden=[16], max_norm=0.5)
    fit(big, images, [labels], hard_label_loss, TrainConfig(epochs=2, batch_size=10, lr=2.0),
        gen(0))
    for layer in big.layers:
        assert layer.weight.norm(dim=1).max().item() <= 0.5 + 1e-5


# ---------------------------------------------------------------- non-finite loss


def test_nan_loss_raises_training_error_naming_the_epoch(tmp_path):
    images, labels = toy_data(40)
    calls = {"n": 0}

    def loss_fn(logits, y):
        calls["n"] += 1
        loss = hard_label_loss(logits, y)
        return loss * float("nan") if calls["n"] == 5 else loss  # 2 batches/epoch: epoch 3

    seen = []
    checkpoint = FileCheckpoint(tmp_path / "ck.pt", "fp")
    with pytest.raises(TrainingError) as info:
        fit(new_model(), images, [labels], loss_fn, TrainConfig(epochs=5, batch_size=20),
            gen(0), on_epoch=seen.append, checkpoint=checkpoint)
    message = str(info.value)
    assert "epoch 3" in message and "nan" in message and "\n" not in message
    assert [r["epoch"] for r in seen] == [1, 2]
    assert checkpoint.load()["epoch"] == 2  # the last good state is kept, not the NaN one


def test_diverging_learning_rate_raises_training_error():
    images, labels = toy_data(40)
    with pytest.raises(TrainingError, match=r"epoch \d+"):
        fit(new_model(), images, [labels], hard_label_loss,
            TrainConfig(epochs=4, batch_size=20, lr=1e30), gen(0))


# ---------------------------------------------------------------- checkpoints


class Interrupt(Exception):
    pass


def test_interrupted_run_resumes_bit_identically(tmp_path):
    reference, ref_history = run(7, epochs=3)

    path = tmp_path / "checkpoint.pt"

    def stop_after_two(record):
        if record["epoch"] == 2:
            raise Interrupt

    with pytest.raises(Interrupt):
        run(7, epochs=3, on_epoch=stop_after_two, checkpoint=FileCheckpoint(path, "fp"))
    assert FileCheckpoint(path, "fp").load()["epoch"] == 2

    # A fresh process: other initial weights and another generator seed; the
    # checkpoint restores model, optimizer, generator and history.
    resumed, history = run(999, epochs=3, init_seed=123, checkpoint=FileCheckpoint(path, "fp"))
    assert [r["epoch"] for r in history] == [1, 2, 3]
    assert strip_seconds(history) == strip_seconds(ref_history)
    assert_same_weights(resumed, reference)


def test_checkpoint_of_another_configuration_is_ignored(tmp_path):
    path = tmp_path / "checkpoint.pt"
    run(7, epochs=2, checkpoint=FileCheckpoint(path, "config-A"))
    assert FileCheckpoint(path, "config-B").load() is None
    fresh, _ = run(7, epochs=2, checkpoint=FileCheckpoint(path, "config-B"))
    plain, _ = run(7, epochs=2)
    assert_same_weights(fresh, plain)


def test_torn_checkpoint_is_ignored(tmp_path):
    path = tmp_path / "checkpoint.pt"
    path.write_bytes(b"PK\x03\x04 torn")
    assert FileCheckpoint(path, "fp").load() is None
    model, history = run(7, epochs=1, checkpoint=FileCheckpoint(path, "fp"))
    assert len(history) == 1


# ---------------------------------------------------------------- evaluation


def test_predict_logits_is_eval_mode_and_restores_the_mode():
    images, _ = toy_data(30)
    model = new_model(0, hidden=[8], input_dropout=0.5, hidden_dropout=0.5)
    model.train()
    a = predict_logits(model, images, batch_size=7)
    assert model.training
    b = predict_logits(model.eval(), images)
    assert not model.training
    assert a.shape == (30, 10)
    torch.testing.assert_close(a, b)
    torch.testing.assert_close(a, model(normalize(images)))


def test_error_summary_on_handcrafted_logits():
    labels = torch.tensor([0, 1, 2, 3, 4, 2, 9])
    predicted = [0, 1, 3, 3, 0, 2, 9]
    logits = F.one_hot(torch.tensor(predicted), 10).float() * 5 - 1
    summary = error_summary(logits, labels)
    assert summary["test_errors"] == 2 == count_errors(logits, labels)
    assert summary["test_total"] == 7
    assert summary["per_class_errors"] == [0, 0, 1, 0, 1, 0, 0, 0, 0, 0]
    assert summary["per_class_total"] == [1, 1, 2, 1, 1, 0, 0, 0, 0, 1]
    assert summary["wrong_indices"] == [2, 4]
    confusion = summary["confusion"]
    assert len(confusion) == 10 and all(len(row) == 10 for row in confusion)
    expected = [[0] * 10 for _ in range(10)]
    for true, pred in zip(labels.tolist(), predicted):
        expected[true][pred] += 1
    assert confusion == expected
    assert confusion[2][3] == 1 and confusion[4][0] == 1 and confusion[2][2] == 1
    assert all(isinstance(v, int) for row in confusion for v in row)


def test_error_summary_all_correct():
    labels = torch.arange(10).repeat(3)
    summary = error_summary(F.one_hot(labels, 10).float(), labels)
    assert summary["test_errors"] == 0 and summary["wrong_indices"] == []
    assert summary["per_class_total"] == [3] * 10
    assert summary["confusion"] == [[3 if i == j else 0 for j in range(10)] for i in range(10)]
