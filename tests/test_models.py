"""Tests of kdrepro.training.models: the MLPs, the fast dropout masks, max-norm and model files."""

from __future__ import annotations

import ast
import os
import pickle
from pathlib import Path

import pytest
import torch

import kdrepro
from kdrepro.training.models import (
    IN_FEATURES,
    MLP,
    NUM_CLASSES,
    ModelFileError,
    dropout_mask,
    load_model,
    save_model,
)

PACKAGE_DIR = Path(kdrepro.__file__).resolve().parent
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def mask(shape, p, seed=0):
    return dropout_mask(torch.Size(shape), p, gen(seed), {})


# ---------------------------------------------------------------- architecture


@pytest.mark.parametrize("hidden", [[1200, 1200], [800, 800], [30, 30], [7], [5, 6, 4]])
def test_mlp_layer_shapes_and_output(hidden):
    torch.manual_seed(0)
    model = MLP(hidden)
    sizes = [IN_FEATURES, *hidden, NUM_CLASSES]
    assert len(model.layers) == len(sizes) - 1
    for layer, (fan_in, fan_out) in zip(model.layers, zip(sizes, sizes[1:])):
        assert tuple(layer.weight.shape) == (fan_out, fan_in)
        assert tuple(layer.bias.shape) == (fan_out,)
    model.eval()
    assert model(torch.randn(3, IN_FEATURES)).shape == (3, NUM_CLASSES)


def test_paper_teacher_parameter_count():
    # 784-1200-1200-10: weights plus biases.
    expected = 784 * 1200 + 1200 + 1200 * 1200 + 1200 + 1200 * 10 + 10
    assert sum(p.numel() for p in MLP([1200, 1200]).parameters()) == expected == 2_395_210


def test_architecture_describes_the_constructor_arguments():
    model = MLP([9, 4], input_dropout=0.2, hidden_dropout=0.5, max_norm=3.5)
    assert model.architecture() == {"hidden": [9, 4], "input_dropout": 0.2,
                                    "hidden_dropout": 0.5, "max_norm": 3.5}
    rebuilt = MLP(**model.architecture())
    assert [tuple(p.shape) for p in rebuilt.parameters()] == [
        tuple(p.shape) for p in model.parameters()]


# ---------------------------------------------------------------- dropout masks


def test_dropout_half_gives_zeros_and_twos_with_mean_one():
    m = mask((4000, 64), 0.5)
    assert m.shape == (4000, 64)
    assert m.dtype == torch.float32
    assert set(m.unique().tolist()) == {0.0, 2.0}
    assert m.mean().item() == pytest.approx(1.0, abs=0.01)  # std of the mean ~0.002


def test_dropout_02_gives_zeros_and_inverse_keep_with_keep_rate_08():
    m = mask((4000, 64), 0.2)
    values = sorted(m.unique().tolist())
    assert len(values) == 2 and values[0] == 0.0
    keep = 1.0 / values[1]
    assert keep == pytest.approx(0.8, abs=1e-4)  # the scale is 1/keep (keep ~ 0.8)
    assert (m > 0).float().mean().item() == pytest.approx(0.8, abs=0.005)
    assert m.mean().item() == pytest.approx(1.0, abs=0.005)


@pytest.mark.parametrize("p", [0.1, 0.3, 0.75])
def test_dropout_other_rates_keep_the_expected_output(p):
    m = mask((2000, 64), p, seed=5)
    nonzero = m[m > 0]
    assert torch.all(nonzero == nonzero[0])
    assert 1.0 / nonzero[0].item() == pytest.approx(1 - p, abs=1e-4)
    assert (m > 0).float().mean().item() == pytest.approx(1 - p, abs=0.01)
    assert m.mean().item() == pytest.approx(1.0, abs=0.02)


@pytest.mark.parametrize("p", [0.5, 0.2])
def test_dropout_every_unit_position_has_the_keep_rate(p):
    """Every one of 64 positions (so every bit of a 64-bit random word) is random.

    A stuck bit (e.g. the top bit of `random_()` on int64, which is always 0) shows
    up as a position with keep rate 0 or 1 (p = 0.5) or 0.6 instead of 0.8 (p = 0.2).
    """
    m = mask((4000, 64), p, seed=1)
    rates = (m > 0).float().mean(0)  # std per position ~ 0.008
    assert rates.min().item() > (1 - p) - 0.05, rates
    assert rates.max().item() < (1 - p) + 0.05, rates


def test_dropout_positions_are_uncorrelated():
    m = (mask((4000, 64), 0.5, seed=2) > 0).double()
    corr = torch.corrcoef(m.T)
    off_diagonal = corr - torch.eye(64, dtype=torch.float64)
    assert off_diagonal.abs().max().item() < 0.1  # ~6 standard errors


def test_dropout_rows_differ():
    m = mask((50, 784), 0.5, seed=3)
    assert len({tuple(row.tolist()) for row in m}) == 50


@pytest.mark.parametrize("p", [0.5, 0.2])
@pytest.mark.parametrize("shape", [(1,), (3,), (7, 13), (5, 63), (2, 65), (4, 1200)])
def test_dropout_odd_shapes(p, shape):
    m = mask(shape, p)
    assert tuple(m.shape) == shape
    assert bool(((m == 0) | (m > 1)).all())


@pytest.mark.parametrize("p", [0.5, 0.2])
def test_dropout_is_deterministic_for_a_generator(p):
    assert torch.equal(mask((100, 300), p, seed=7), mask((100, 300), p, seed=7))
    assert not torch.equal(mask((100, 300), p, seed=7), mask((100, 300), p, seed=8))


@pytest.mark.parametrize("p", [0.5, 0.2])
def test_dropout_cache_does_not_change_the_draws(p):
    g1, g2, shared = gen(4), gen(4), {}
    for _ in range(3):
        a = dropout_mask(torch.Size((10, 100)), p, g1, shared)
        b = dropout_mask(torch.Size((10, 100)), p, g2, {})
        assert torch.equal(a, b)


def test_dropout_advances_the_generator():
    g, cache = gen(0), {}
    a = dropout_mask(torch.Size((10, 64)), 0.5, g, cache)
    b = dropout_mask(torch.Size((10, 64)), 0.5, g, cache)
    assert not torch.equal(a, b)


@needs_cuda
@pytest.mark.parametrize("p", [0.5, 0.2])
def test_dropout_on_a_cuda_generator(p):
    g = torch.Generator(device="cuda").manual_seed(1)
    m = dropout_mask(torch.Size((4000, 64)), p, g, {})
    assert m.device.type == "cuda"
    rates = (m > 0).float().mean(0).cpu()
    assert rates.min().item() > (1 - p) - 0.05 and rates.max().item() < (1 - p) + 0.05
    assert m.mean().item() == pytest.approx(1.0, abs=0.01)


# ---------------------------------------------------------------- forward passes


def manual_forward(model: MLP, x: torch.Tensor) -> torch.Tensor:
    for layer in model.layers[:-1]:
        x = torch.relu(layer(x))
    return model.layers[-1](x)


def test_eval_mode_has_no_dropout_and_needs_no_generator():
    torch.manual_seed(0)
    model = MLP([32, 32], input_dropout=0.5, hidden_dropout=0.5).eval()
    x = torch.randn(4, IN_FEATURES)
    assert model.generator is None
    out = model(x)
    assert torch.equal(out, model(x))
    torch.testing.assert_close(out, manual_forward(model, x), rtol=0, atol=0)


def test_train_mode_applies_dropout_from_the_generator():
    torch.manual_seed(0)
    model = MLP([32, 32], input_dropout=0.2, hidden_dropout=0.5).train()
    x = torch.randn(4, IN_FEATURES)
    with pytest.raises(RuntimeError, match="generator"):
        model(x)
    model.generator = gen(1)
    first, second = model(x), model(x)
    assert not torch.equal(first, second)
    assert not torch.equal(first, model.eval()(x))
    model.train()
    model.generator = gen(1)
    assert torch.equal(model(x), first)


def test_train_mode_without_dropout_draws_nothing():
    torch.manual_seed(0)
    model = MLP([16]).train()
    model.generator = g = gen(3)
    before = g.get_state()
    x = torch.randn(2, IN_FEATURES)
    assert torch.equal(model(x), manual_forward(model, x))
    assert torch.equal(g.get_state(), before)


def test_input_dropout_zeroes_inputs():
    torch.manual_seed(0)
    model = MLP([8], input_dropout=0.5).train()
    model.generator = gen(0)
    seen = []
    model.layers[0].register_forward_pre_hook(lambda _m, args: seen.append(args[0]))
    x = torch.ones(2, IN_FEATURES)
    model(x)
    assert set(seen[0].unique().tolist()) == {0.0, 2.0}


# ---------------------------------------------------------------- max-norm


def row_norms(model: MLP) -> list[torch.Tensor]:
    return [layer.weight.detach().norm(dim=1) for layer in model.layers]


def test_max_norm_holds_after_a_large_sgd_step():
    torch.manual_seed(0)
    model = MLP([32, 32], max_norm=1.0)
    optimizer = torch.optim.SGD(model.parameters(), lr=1000.0, momentum=0.9)
    x, y = torch.randn(16, IN_FEATURES), torch.randint(0, 10, (16,))
    for _ in range(2):
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()
        before = [layer.weight.detach().clone() for layer in model.layers]
        assert max(n.max().item() for n in row_norms(model)) > 1.0  # the test bites
        model.apply_max_norm()
        for w_before, layer, norms in zip(before, model.layers, row_norms(model)):
            assert norms.max().item() <= 1.0 + 1e-5
            small = w_before.norm(dim=1) <= 1.0
            # Rows within the limit are untouched; the others only rescaled.
            assert torch.equal(layer.weight[small], w_before[small])
            big = ~small
            if big.any():
                ratio = layer.weight[big] / w_before[big]
                torch.testing.assert_close(
                    ratio, ratio[:, :1].expand_as(ratio), rtol=1e-4, atol=1e-6)
                torch.testing.assert_close(norms[big], torch.ones(int(big.sum())),
                                           rtol=0, atol=1e-5)


@needs_cuda
def test_max_norm_on_cuda_matches_cpu():
    torch.manual_seed(0)
    model = MLP([32], max_norm=1.0)
    with torch.no_grad():
        model.layers[0].weight.mul_(50)
    gpu = MLP([32], max_norm=1.0).cuda()
    gpu.load_state_dict(model.state_dict())
    model.apply_max_norm()
    gpu.apply_max_norm()
    for a, b in zip(model.parameters(), gpu.parameters()):
        torch.testing.assert_close(a, b.cpu(), rtol=1e-5, atol=1e-6)


def test_max_norm_none_is_a_no_op():
    torch.manual_seed(0)
    model = MLP([8])
    with torch.no_grad():
        model.layers[0].weight.mul_(100)
    before = [p.clone() for p in model.parameters()]
    model.apply_max_norm()
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))


# ---------------------------------------------------------------- model files


def test_save_load_round_trip_gives_identical_outputs(tmp_path):
    torch.manual_seed(0)
    model = MLP([24, 12], input_dropout=0.2, hidden_dropout=0.5, max_norm=3.5)
    path = tmp_path / "sub" / "model.pt"
    save_model(model, path)
    loaded = load_model(path)
    assert isinstance(loaded, MLP)
    assert loaded.architecture() == model.architecture()
    for (k1, v1), (k2, v2) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert k1 == k2 and torch.equal(v1, v2)
    x = torch.randn(5, IN_FEATURES)
    assert torch.equal(model.eval()(x), loaded.eval()(x))
    assert [p.name for p in path.parent.iterdir()] == ["model.pt"]  # no temp files left


def test_save_overwrites_atomically(tmp_path):
    path = tmp_path / "model.pt"
    torch.manual_seed(0)
    save_model(MLP([4]), path)
    torch.manual_seed(1)
    second = MLP([6])
    save_model(second, path)
    assert load_model(path).architecture()["hidden"] == [6]


def assert_model_file_error(path: Path, info) -> None:
    message = str(info.value)
    assert str(path) in message
    assert "\n" not in message


def test_load_missing_file(tmp_path):
    path = tmp_path / "absent.pt"
    with pytest.raises(ModelFileError) as info:
        load_model(path)
    assert_model_file_error(path, info)


@pytest.mark.parametrize("keep", [0.0, 0.1, 0.5, 0.99])
def test_load_truncated_file(tmp_path, keep):
    torch.manual_seed(0)
    good = tmp_path / "good.pt"
    save_model(MLP([16]), good)
    data = good.read_bytes()
    path = tmp_path / "truncated.pt"
    path.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(ModelFileError) as info:
        load_model(path)
    assert_model_file_error(path, info)


def _foreign_files(tmp_path: Path) -> dict[str, Path]:
    files = {}
    files["pickle"] = tmp_path / "plain.pkl"
    files["pickle"].write_bytes(pickle.dumps({"architecture": {"hidden": [4]}}))
    files["text"] = tmp_path / "notes.txt"
    files["text"].write_text("hello\nworld\n")
    files["tensor"] = tmp_path / "tensor.pt"
    torch.save(torch.zeros(3), files["tensor"])
    files["bare_state_dict"] = tmp_path / "bare.pt"
    torch.manual_seed(0)
    torch.save(MLP([4]).state_dict(), files["bare_state_dict"])
    files["wrong_shapes"] = tmp_path / "wrong.pt"
    torch.save({"architecture": {"hidden": [5]}, "state_dict": MLP([4]).state_dict()},
               files["wrong_shapes"])
    files["bad_architecture"] = tmp_path / "arch.pt"
    torch.save({"architecture": {"width": 5}, "state_dict": {}}, files["bad_architecture"])
    return files


@pytest.mark.parametrize("kind", ["pickle", "text", "tensor", "bare_state_dict",
                                  "wrong_shapes", "bad_architecture"])
def test_load_foreign_file(tmp_path, kind):
    path = _foreign_files(tmp_path)[kind]
    with pytest.raises(ModelFileError) as info:
        load_model(path)
    assert_model_file_error(path, info)


class _Payload:
    """Unpickling this runs code (creates a folder) unless torch.load has weights_only=True."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (os.makedirs, (self.marker,))


def test_load_refuses_code_carrying_pickles(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    torch.manual_seed(0)
    torch.save({"architecture": _Payload(str(marker)), "state_dict": MLP([4]).state_dict()},
               path)
    with pytest.raises(ModelFileError) as info:
        load_model(path)
    assert_model_file_error(path, info)
    assert not marker.exists()


def test_load_model_calls_torch_load_with_weights_only(tmp_path, monkeypatch):
    torch.manual_seed(0)
    path = tmp_path / "model.pt"
    save_model(MLP([4]), path)
    calls = []
    real_load = torch.load

    def spy(*args, **kwargs):
        calls.append(kwargs.get("weights_only"))
        return real_load(*args, **kwargs)

    monkeypatch.setattr(torch, "load", spy)
    load_model(path)
    assert calls and all(flag is True for flag in calls)


def test_every_torch_load_in_the_package_uses_weights_only_true():
    """Static check over kdrepro/**/*.py: no torch.load without weights_only=True, no pickle.load."""
    found = []
    for source in sorted(PACKAGE_DIR.rglob("*.py")):
        tree = ast.parse(source.read_text(encoding="utf-8"), filename=str(source))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module == "torch":
                assert "load" not in {a.name for a in node.names}, source.name
            if not isinstance(node, ast.Call):
                continue
            name = ast.unparse(node.func)
            if name.split(".")[-1] in ("load", "loads") and name.split(".")[0] in (
                    "pickle", "cPickle", "dill", "joblib"):
                pytest.fail(f"{source.name}:{node.lineno} calls {name}")
            if name == "torch.load":
                flags = {k.arg: k.value for k in node.keywords}
                ok = isinstance(flags.get("weights_only"), ast.Constant) and \
                    flags["weights_only"].value is True
                found.append((source.name, node.lineno, ok))
    assert found, "expected torch.load calls in the package"
    assert all(ok for _, _, ok in found), [f for f in found if not f[2]]
