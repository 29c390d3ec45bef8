"""Tests of the 2020 blog's knobs (issue 16) and the input-dropout space (issue 15, finding 1):
each is an ordinary run setting; the paper profile's specs do not change."""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import yaml
from conftest import write_synthetic_dir
from typer.testing import CliRunner

from kdrepro import plan
from kdrepro.cli.app import app
from kdrepro.config import validate_config
from kdrepro.data.fetch import fetch_mnist
from kdrepro.data.jitter import Jitter
from kdrepro.data.mnist import MEAN, STD, normalize
from kdrepro.training.bias import bias_experiment, set_all_biases
from kdrepro.training.engine import TrainConfig, step_lr, train_epoch
from kdrepro.training.live_teacher import LiveTeacher
from kdrepro.training.losses import distillation_loss
from kdrepro.training.models import MLP, load_model, save_model
from kdrepro.training.runs import soft_targets_run, train_run
from kdrepro.training.spec import SpecError, spec_from_dict

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = ROOT / "workflow" / "schemas" / "config.schema.yaml"


def _profile(*overlays: str) -> dict:
    config = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    for name in overlays:
        config = plan.merge_config(config, yaml.safe_load((ROOT / "config" / name).read_text()))
    return validate_config(config, SCHEMA)


def _dropped_inputs(space: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(what the first layer sees, the standardised input) with all-but-certain input dropout."""
    model = MLP([4], input_dropout=0.5, input_dropout_space=space).train()
    model.generator = torch.Generator().manual_seed(0)
    x = normalize(torch.randint(1, 256, (8, 28, 28), dtype=torch.uint8))
    return model._inputs(x), x


def test_raw_space_dropout_leaves_a_dropped_pixel_as_background():
    seen, _ = _dropped_inputs("raw")
    background = normalize(torch.zeros(1, 28, 28, dtype=torch.uint8))[0, 0]
    dropped = seen[seen < background + 1e-6]
    assert dropped.numel() > 1000  # p = 0.5 of 6272 pixels, all non-zero
    assert torch.equal(dropped, torch.full_like(dropped, float(background)))


def test_normalized_space_dropout_leaves_a_dropped_pixel_at_zero():
    seen, x = _dropped_inputs("normalized")
    zeros = seen == 0
    assert zeros.sum() > 1000 and not (x == 0).any()
    kept = ~zeros
    assert torch.allclose(seen[kept], 2 * x[kept])  # inverted dropout: kept / (1 - p)


def test_raw_space_keeps_raw_intensities_scaled_by_the_keep_rate():
    seen, x = _dropped_inputs("raw")
    raw_seen, raw = seen * STD + MEAN, x * STD + MEAN
    kept = raw_seen > 1e-6
    assert torch.allclose(raw_seen[kept], 2 * raw[kept], atol=1e-5)


def test_unit_scaling_feeds_pixels_in_zero_one_and_eval_ignores_dropout_space():
    images = torch.randint(0, 256, (4, 28, 28), dtype=torch.uint8)
    model = MLP([4], input_scaling="unit").eval()
    seen = model._inputs(normalize(images))
    assert torch.allclose(seen, images.reshape(4, -1).float() / 255, atol=1e-6)
    raw = MLP([4], input_dropout=0.2, input_dropout_space="raw").eval()
    assert torch.equal(raw._inputs(normalize(images)), normalize(images))


def test_model_file_keeps_the_input_convention(tmp_path):
    model = MLP([4], input_scaling="unit", input_dropout_space="raw")
    save_model(model, tmp_path / "m.pt")
    again = load_model(tmp_path / "m.pt")
    assert (again.input_scaling, again.input_dropout_space) == ("unit", "raw")
    assert set(MLP([4]).architecture()) == {"hidden", "input_dropout", "hidden_dropout", "max_norm"}


def test_horizontal_jitter_never_moves_rows():
    images = torch.zeros(50, 28, 28, dtype=torch.uint8)
    images[:, 10:18, 10:18] = 255
    jitter = Jitter(images, 2, "horizontal")
    generator = torch.Generator().manual_seed(1)
    shifts = jitter.shifts(500, generator)
    assert (shifts[:, 0] == 0).all() and set(shifts[:, 1].tolist()) == {-2, -1, 0, 1, 2}
    out = jitter(torch.arange(50), generator)
    rows = (out > 0).any(2)
    assert (rows == (images > 0).any(2)).all()  # the same rows lit, columns moved
    with pytest.raises(ValueError, match="vertical"):
        Jitter(images, 2, "vertical")


def test_step_schedule_is_steplr_stepped_before_each_epoch():
    """The blog's loop: scheduler.step() at the start of each epoch, then optimiser steps."""
    param = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([param], lr=0.01, momentum=0.9)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=30, gamma=0.1)
    seen = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # PyTorch warns about this order; the blog ignored it
        for _ in range(100):
            scheduler.step()
            seen.append(optimizer.param_groups[0]["lr"])
            optimizer.step()
    cfg = TrainConfig(epochs=100, lr=0.01, lr_schedule="step", lr_step_size=30, lr_gamma=0.1)
    ours = [cfg.lr_at(e) for e in range(100)]
    assert ours == pytest.approx(seen, rel=1e-12)
    assert ours[28] == 0.01 and ours[29] == pytest.approx(0.001)  # drops after 29 epochs
    assert step_lr(1.0, 0.5, 2, 0) == 1.0 and step_lr(1.0, 0.5, 2, 1) == 0.5


def test_blog_loss_equals_weighted_soft_cross_entropy_up_to_the_teacher_entropy():
    torch.manual_seed(0)
    student, teacher = torch.randn(20, 10, requires_grad=True), torch.randn(20, 10) * 3
    labels, T = torch.randint(0, 10, (20,)), 8.0
    p = torch.softmax(teacher / T, 1)
    ours = distillation_loss(student, p, labels, T, hard_weight=0.3, soft_weight=0.7)
    kl = F.kl_div(F.log_softmax(student / T, 1), p, reduction="batchmean")
    blog = 0.7 * T**2 * kl + 0.3 * F.cross_entropy(student, labels)
    entropy = -(p * p.log()).sum(1).mean()
    assert float((ours - blog).detach()) == pytest.approx(float(0.7 * T**2 * entropy), rel=1e-4)
    g_ours, = torch.autograd.grad(ours, student)
    g_blog, = torch.autograd.grad(blog, student)
    assert torch.allclose(g_ours, g_blog, atol=1e-6)


def test_live_teacher_scores_each_jittered_batch():
    """A callable target is called with the batch's (jittered) inputs."""
    teacher = MLP([8]).eval()
    live, calls = LiveTeacher(teacher, 4.0), []

    def loss_fn(out, labels, probs):
        calls.append(probs)
        return distillation_loss(out, probs, labels, 4.0)

    class Recorder:
        def __call__(self, index, generator):
            self.last = normalize(torch.randint(0, 256, (len(index), 28, 28), dtype=torch.uint8,
                                                generator=generator))
            return self.last

    student, source = MLP([6]), Recorder()
    student.generator = torch.Generator().manual_seed(0)
    optimizer = torch.optim.SGD(student.parameters(), lr=0.1)
    train_epoch(student, optimizer, source, [torch.zeros(10, dtype=torch.long), live],
                loss_fn, 10, torch.Generator().manual_seed(0))
    assert torch.allclose(calls[0], torch.softmax(teacher(source.last) / 4.0, 1))


@pytest.mark.parametrize("bad", [
    {"input_dropout_space": "pixel"}, {"input_scaling": "minmax"}, {"jitter_axes": "x"},
    {"lr_schedule": "steps"}, {"lr_step_size": 0}, {"lr_gamma": 0}, {"soft_weight": -1},
    {"teacher_inputs": "online"}])
def test_spec_names_a_bad_blog_setting(bad):
    with pytest.raises(SpecError, match=f"'{next(iter(bad))}'"):
        spec_from_dict({"role": "distilled", "hidden": [8], "temperature": 2, **bad})


def test_spec_refuses_a_live_teacher_without_a_teacher():
    with pytest.raises(SpecError, match="teacher_inputs"):
        spec_from_dict({"role": "baseline", "hidden": [8], "teacher_inputs": "live"})


def test_set_all_biases_equals_dropping_the_biases():
    torch.manual_seed(0)
    logits, labels, bias = torch.randn(50, 10), torch.randint(0, 10, (50,)), torch.randn(10)
    assert torch.allclose(set_all_biases(logits, bias, 3.5), logits - bias + 3.5)
    result = bias_experiment((logits, labels), None, [3], 3.5, [0.0, 3.5], set_all=(bias, 3.5))
    all_set = result["protocols"]["all_set"]
    assert all_set["bias_value"] == 3.5 and "not the paper" in all_set["selected_by"]
    assert all_set["test_errors"] == int(((logits - bias).argmax(1) != labels).sum())


def test_paper_profile_specs_carry_none_of_the_new_keys():
    config = _profile()
    new = set(plan.LATER_DEFAULTS)
    specs = [plan.teacher_spec(config, 1),
             plan.student_spec(config, "distilled", 800, 1, 20.0),
             plan.student_spec(config, "baseline", 800, 1)]
    # the one new key the paper profile sets: raw-space input dropout, chosen on validation
    assert [sorted(new & set(json.loads(s))) for s in specs] == [["input_dropout_space"], [], []]
    assert json.loads(specs[0])["input_dropout_space"] == "raw"


def test_blog_profile_validates_and_its_specs_carry_the_blog_recipe():
    config = _profile("blog2020.yaml")
    teacher = spec_from_dict(json.loads(plan.teacher_spec(config, 1)))
    assert (teacher.hidden, teacher.input_dropout, teacher.hidden_dropout, teacher.max_norm) == (
        (1200, 1200), 0.0, 0.0, None)
    assert (teacher.lr, teacher.momentum_at(0), teacher.weight_decay, teacher.epochs) == (
        0.01, 0.9, 1e-5, 100)
    assert (teacher.lr_schedule, teacher.lr_step_size, teacher.lr_gamma) == ("step", 30, 0.1)
    assert (teacher.jitter, teacher.jitter_axes, teacher.input_scaling) == (2, "horizontal", "unit")
    student = spec_from_dict(json.loads(plan.student_spec(config, "distilled", 800, 1, 20.0)))
    assert (student.soft_weight, student.hard_weight, student.teacher_inputs) == (0.7, 0.3, "live")
    assert (student.epochs, student.lr, student.momentum_at(0), student.weight_decay) == (
        25, 0.01, 0.9, 0.0)
    assert (student.jitter, student.jitter_axes, student.input_scaling) == (2, "horizontal", "unit")
    assert student.lr_at(28) == 0.01 and student.lr_at(29) == pytest.approx(0.001)
    runs = plan.experiment_runs(config)
    assert {"distilled/h800/T20/seed1", "distilled/h300/T8/seed1", "distilled/h30/T20/seed1",
            "distilled/h30/T2.5/seed1"} <= set(runs)
    assert config["omit"]["set_all_biases"] == 3.5


def test_ablation_plan_removes_exactly_one_ingredient():
    config = _profile()
    base = json.loads(plan.teacher_spec(config, config["teacher"]["seeds"][0]))
    removed = {}
    for variant in plan.ablation_variants(config):
        spec = json.loads(plan.ablation_teacher_spec(config, variant))
        removed[variant] = {k for k in base if spec[k] != base[k]}
    assert removed == {"no_jitter": {"jitter"}, "no_dropout": {"input_dropout", "hidden_dropout"},
                       "no_max_norm": {"max_norm"}}
    student = json.loads(plan.ablation_student_spec(config))
    assert (student["role"], student["hidden"], student["temperature"]) == ("distilled", [800, 800], 20)
    assert plan.ablation_targets(config)[:2] == ["results/ablation/no_jitter/teacher/metrics.json",
                                                 "results/ablation/no_jitter/distilled/metrics.json"]
    assert not any("ablation" in t for t in plan.experiment_targets(config))
    with pytest.raises(ValueError, match="no_teacher"):
        plan.ablation_teacher_spec(config, "no_teacher")


def test_live_distillation_run_trains_from_the_teacher_file(tmp_path):
    root = tmp_path / "data"
    cache = root / "mnist.pt"
    fetch_mnist(cache, root / "idx", expected=write_synthetic_dir(root / "idx"), sources=("dir",))
    teacher = {"role": "teacher", "hidden": [8], "epochs": 1, "batch_size": 50, "seed": 1,
               "input_scaling": "unit", "jitter": 2, "jitter_axes": "horizontal"}
    train_run(spec_from_dict(teacher), cache, tmp_path / "t", label="teacher")
    student = {"role": "distilled", "hidden": [6], "epochs": 2, "batch_size": 50, "seed": 1,
               "temperature": 8, "soft_weight": 0.7, "hard_weight": 0.3, "teacher_inputs": "live",
               "lr_schedule": "step", "lr_step_size": 2, "jitter": 2, "jitter_axes": "horizontal"}
    soft = tmp_path / "t" / "soft_targets.pt"  # passed by the workflow's rule, not read
    soft_targets_run(tmp_path / "t" / "model.pt", cache, soft)
    metrics = train_run(spec_from_dict({**student, "role": "omit", "omit": [3]}), cache,
                        tmp_path / "s", label="s", teacher_path=tmp_path / "t" / "model.pt",
                        soft_targets_path=soft)
    assert [h["lr"] for h in metrics["history"]] == pytest.approx([0.1, 0.01])
    assert all(math.isfinite(h["loss"]) for h in metrics["history"])
    manifest = json.loads((tmp_path / "s" / "manifest.json").read_text())
    assert set(manifest["inputs"]) == {"teacher"}  # no soft-target file was read
    result = CliRunner().invoke(app, ["bias", "--run-dir", str(tmp_path / "s"), "--data", str(cache),
                                      "--out", str(tmp_path / "s" / "bias.json"),
                                      "--shifts=0:1:0.5", "--set-all-biases", "3.5"])
    assert result.exit_code == 0, result.output
    all_set = json.loads((tmp_path / "s" / "bias.json").read_text())["protocols"]["all_set"]
    assert all_set["bias_value"] == 3.5 and all_set["test_total"] == metrics["test_total"]


def test_assumption_register_has_every_run_setting():
    import dataclasses

    from kdrepro.report.claims import paper_facts
    from kdrepro.training.spec import RunSpec

    keys = {a["key"] for a in paper_facts()["assumptions"]}
    assert {f.name for f in dataclasses.fields(RunSpec)} - {"role"} <= keys
    why = next(a["why"] for a in paper_facts()["assumptions"] if a["key"] == "input_dropout_space")
    assert "validation split" in why and "two seeds each" in why


def test_fingerprint_of_a_default_spec_is_the_one_older_checkpoints_carry():
    from kdrepro.training.spec import LATER_FIELDS, fingerprint

    spec = spec_from_dict({"role": "baseline", "hidden": [8]})
    older = {k: v for k, v in spec.to_dict().items() if k not in LATER_FIELDS}
    assert fingerprint(spec, "data") == json.dumps([older, "data"], sort_keys=True)
    blog = spec_from_dict({"role": "baseline", "hidden": [8], "input_scaling": "unit"})
    assert fingerprint(blog, "data") != fingerprint(spec, "data")
