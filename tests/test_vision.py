"""The timm vision path: adapter (ViT / DeiT distilled / CaiT / Swin), vision math vs numpy, trainer steps,
teacher re-normalisation, timm-format save/reload, image data, and the user errors.

Tiny random timm models (pretrained=False, img_size 32); nothing downloads.
"""

import json
import os

import numpy as np
import pytest
import torch

timm = pytest.importorskip("timm")

from hf_spectralkd import (
    SpectralDistillationConfig,
    SpectralDistillationTrainer,
    frequency_alignment_loss,
    spectral_intensity,
)
from hf_spectralkd.adapters import get_adapter
from hf_spectralkd.adapters.timm import TimmAdapter

NUM_CLASSES = 4
IMG = 32


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    # the CPU is shared: one intra-op thread is much faster than two contending ones
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def vit(depth=3, dim=32, heads=2, seed=0, name="vit_tiny_patch16_224", **kwargs):
    torch.manual_seed(seed)
    return timm.create_model(
        name,
        pretrained=False,
        num_classes=NUM_CLASSES,
        img_size=IMG,
        patch_size=8,
        embed_dim=dim,
        depth=depth,
        num_heads=heads,
        **kwargs,
    ).eval()


def swin(seed=0):
    torch.manual_seed(seed)
    return timm.create_model(
        "swin_tiny_patch4_window7_224",
        pretrained=False,
        num_classes=NUM_CLASSES,
        img_size=IMG,
        patch_size=2,
        embed_dim=16,
        depths=(1, 1),
        num_heads=(2, 2),
        window_size=4,
    ).eval()


# ------------------------------------------------------------------------------------------ adapter table
# (builder, number of blocks/stages n, shapes of hidden_states[0..n] for a batch of 2, number of prefix tokens)
FAMILIES = {
    "vit": (lambda: vit(), 3, [(2, 32, 4, 4)] * 4, 1),
    "deit_distilled": (lambda: vit(name="deit_tiny_distilled_patch16_224"), 3, [(2, 32, 4, 4)] * 4, 2),
    "cait": (lambda: vit(name="cait_xxs24_224"), 3, [(2, 32, 4, 4)] * 4, 1),
    "vit_registers": (lambda: vit(reg_tokens=4, no_embed_class=True), 3, [(2, 32, 4, 4)] * 4, 5),
    "swin": (swin, 2, [(2, 16, 16, 16), (2, 16, 16, 16), (2, 32, 8, 8)], 0),
}


def _reference_block_outputs(model, x):
    """Block outputs computed step by step from the model's own modules (prefix tokens sliced off here)."""
    if hasattr(model, "layers"):  # Swin: stages on NHWC maps
        h = model.patch_embed(x)
        outs = []
        for stage in model.layers:
            h = stage(h)
            outs.append(h.permute(0, 3, 1, 2))
        return outs
    h = model.patch_embed(x)
    if hasattr(model, "_pos_embed"):  # ViT / DeiT: class (+ distillation / register) tokens are prepended here
        h = model.norm_pre(model._pos_embed(h))
    else:  # CaiT: the class token only enters the class-attention blocks, after the SA blocks
        h = h + model.pos_embed
    prefix = getattr(model, "num_prefix_tokens", 0) if hasattr(model, "_pos_embed") else 0
    outs = []
    for block in model.blocks:
        h = block(h)
        tokens = h[:, prefix:]
        n, length, dim = tokens.shape
        side = int(length**0.5)
        outs.append(tokens.transpose(1, 2).reshape(n, dim, side, side))
    return outs


@pytest.mark.parametrize("family", list(FAMILIES))
def test_adapter_maps_per_family(family):
    build, n_blocks, shapes, prefix = FAMILIES[family]
    model = build()
    adapter = get_adapter(model)
    assert isinstance(adapter, TimmAdapter)
    assert adapter.num_layers(model) == n_blocks
    assert adapter.num_labels(model) == NUM_CLASSES
    if family != "swin":
        assert getattr(model, "num_prefix_tokens", 0) == prefix  # the table row is about what it claims
    x = torch.randn(2, 3, IMG, IMG)
    with torch.no_grad():
        out = adapter.forward(model, {"pixel_values": x, "labels": torch.tensor([0, 1])})
        reference = _reference_block_outputs(model, x)
        direct_logits = model(x)
    assert [tuple(h.shape) for h in out.hidden_states] == shapes
    assert out.attention_mask is None
    # the patch grid only: H*W is the number of patches, the prefix tokens are gone
    assert all(h.shape[2] * h.shape[3] in (16, 256, 64) for h in out.hidden_states)
    for got, want in zip(out.hidden_states[1:], reference, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(out.logits, direct_logits, rtol=1e-5, atol=1e-5)
    # index 0 is the patch embedding on the grid
    embed = model.patch_embed(x)
    embed = embed.permute(0, 3, 1, 2) if embed.dim() == 4 else embed.transpose(1, 2).reshape(shapes[0])
    torch.testing.assert_close(out.hidden_states[0], embed)
    # without hidden states: the same logits, nothing else
    lean = adapter.forward(model, {"pixel_values": x}, output_hidden_states=False)
    assert lean.hidden_states is None
    torch.testing.assert_close(lean.logits, direct_logits, rtol=1e-5, atol=1e-5)


def test_deit_distilled_training_heads_are_averaged():
    model = vit(name="deit_tiny_distilled_patch16_224")
    model.set_distilled_training(True)
    model.train()
    x = torch.randn(2, 3, IMG, IMG)
    torch.manual_seed(0)
    cls_logits, dist_logits = model(x)  # timm returns the two heads separately in distilled training
    torch.manual_seed(0)
    out = get_adapter(model).forward(model, {"pixel_values": x})
    torch.testing.assert_close(out.logits, (cls_logits + dist_logits) / 2, rtol=1e-5, atol=1e-5)


# ------------------------------------------------------------------------------------------ numpy references
def _np_intensity(x):
    """docs/method.md with positions as tokens: full DFT over channels / C, |.|, mean over (n, positions), mean over
    bins."""
    n, c, h, w = x.shape
    tokens = x.reshape(n, c, h * w).transpose(0, 2, 1)
    spectrum = np.abs(np.fft.fft(tokens, axis=-1) / c).mean(axis=(0, 1))
    return spectrum.mean()


def _np_adaptive_pool_1d(x, out, axis):
    size = x.shape[axis]
    pieces = []
    for i in range(out):
        start, end = (i * size) // out, -((-(i + 1) * size) // out)
        pieces.append(np.take(x, range(start, end), axis=axis).mean(axis=axis, keepdims=True))
    return np.concatenate(pieces, axis=axis)


def _np_loss(student, teacher):
    channels = min(student.shape[1], teacher.shape[1])
    s = _np_adaptive_pool_1d(student, channels, 1)
    t = _np_adaptive_pool_1d(teacher, channels, 1)
    grid_h, grid_w = min(s.shape[2], t.shape[2]), min(s.shape[3], t.shape[3])
    s = _np_adaptive_pool_1d(_np_adaptive_pool_1d(s, grid_h, 2), grid_w, 3)
    t = _np_adaptive_pool_1d(_np_adaptive_pool_1d(t, grid_h, 2), grid_w, 3)
    fs = np.fft.rfft2(s, axes=(2, 3), norm="ortho")
    ft = np.fft.rfft2(t, axes=(2, 3), norm="ortho")
    stacked_s = np.stack([fs.real, fs.imag], axis=-1)
    stacked_t = np.stack([ft.real, ft.imag], axis=-1)
    return ((stacked_s - stacked_t) ** 2).mean()


def test_vision_intensity_and_loss_match_numpy():
    x = torch.randn(3, 3, IMG, IMG)
    with torch.no_grad():
        vit_maps = get_adapter(vit(dim=24, heads=2)).forward(vit(dim=24, heads=2), {"pixel_values": x}).hidden_states
        swin_maps = get_adapter(swin()).forward(swin(), {"pixel_values": x}).hidden_states
    maps = list(vit_maps) + list(swin_maps)
    got = spectral_intensity(maps)
    want = [_np_intensity(m.double().numpy()) for m in maps]
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-5)
    # narrower student on a coarser grid (teacher channels 32 -> 24, grid 8x8 -> 4x4) ...
    s_map, t_map = vit_maps[2], swin_maps[2]
    assert tuple(s_map.shape[1:]) == (24, 4, 4) and tuple(t_map.shape[1:]) == (32, 8, 8)
    loss = frequency_alignment_loss(s_map, t_map)
    np.testing.assert_allclose(loss.item(), _np_loss(s_map.double().numpy(), t_map.double().numpy()), rtol=1e-5)
    # ... and a wider student on a finer grid (student 32 -> 24 channels, 8x8 -> 4x4)
    loss = frequency_alignment_loss(t_map, s_map)
    np.testing.assert_allclose(loss.item(), _np_loss(t_map.double().numpy(), s_map.double().numpy()), rtol=1e-5)
    # mixed widths on the same grid, with the stage-0 Swin map (16 ch, 16x16) against the 8x8 stage
    loss = frequency_alignment_loss(swin_maps[1], swin_maps[2])
    np.testing.assert_allclose(
        loss.item(), _np_loss(swin_maps[1].double().numpy(), swin_maps[2].double().numpy()), rtol=1e-5
    )
    assert frequency_alignment_loss(t_map, t_map).item() == 0.0


# ------------------------------------------------------------------------------------------ data + trainer
@pytest.fixture(scope="module")
def digits_splits():
    from hf_spectralkd.recipes import DataSection
    from hf_spectralkd.tasks.image import load_image_data

    splits, label_names, info = load_image_data(DataSection(source="sklearn:digits", seed=42))
    return splits, label_names, info


def test_digits_data_through_timm_transforms(digits_splits):
    from hf_spectralkd.tasks.image import ImageProcessor, image_collator, transform_splits

    splits, label_names, info = digits_splits
    assert info["splits"] == {"train": 1078, "validation": 359, "test": 360}  # 60/20/20 of 1,797, seeded
    assert label_names == [str(i) for i in range(10)]
    assert info["image_column"] == "image"
    model = timm.create_model(
        "vit_tiny_patch16_224",
        pretrained=False,
        num_classes=10,
        img_size=IMG,
        patch_size=4,
        embed_dim=16,
        depth=1,
        num_heads=2,
        pretrained_cfg_overlay=dict(crop_pct=1.0),
    )
    processor = ImageProcessor.from_model(model)
    assert processor.data_config["input_size"] == [3, IMG, IMG]
    prepared = transform_splits(splits, processor)
    batch = image_collator([prepared["train"][i] for i in range(4)])
    assert batch["pixel_values"].shape == (4, 3, IMG, IMG) and batch["labels"].dtype == torch.long
    # the raw 8x8 image, resized by timm's bicubic transform and normalised with mean/std 0.5
    raw = np.asarray(splits["train"][0]["image"], dtype=np.float32) / 255.0
    pixels = batch["pixel_values"][0]
    torch.testing.assert_close(pixels[0], pixels[1])  # grey -> RGB
    assert abs(float(pixels[0].mean()) - (raw.mean() - 0.5) / 0.5) < 0.05
    assert batch["labels"][0].item() == splits["train"][0]["label"]


def _prepared(digits_splits, n=48):
    from hf_spectralkd.tasks.image import ImageProcessor, transform_splits

    splits, _, _ = digits_splits
    small = {k: v.select(range(n)) for k, v in splits.items() if k in ("train", "validation")}
    processor = ImageProcessor(
        {
            "input_size": [3, IMG, IMG],
            "interpolation": "bicubic",
            "mean": [0.5] * 3,
            "std": [0.5] * 3,
            "crop_pct": 1.0,
            "crop_mode": "center",
        }
    )
    return transform_splits(small, processor)


def _digits_vit(depth, dim, seed, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5)):
    torch.manual_seed(seed)
    return timm.create_model(
        "vit_tiny_patch16_224",
        pretrained=False,
        num_classes=10,
        img_size=IMG,
        patch_size=8,
        embed_dim=dim,
        depth=depth,
        num_heads=2,
        pretrained_cfg_overlay=dict(mean=mean, std=std, crop_pct=1.0, label_names=[str(i) for i in range(10)]),
    )


def _config(tmp_path, **overrides):
    values = dict(
        output_dir=str(tmp_path / "out"),
        max_steps=3,
        per_device_train_batch_size=8,
        per_device_eval_batch_size=16,
        logging_steps=1,
        report_to="none",
        save_strategy="no",
        use_cpu=True,
        disable_tqdm=True,
        seed=0,
        remove_unused_columns=False,
        selection_samples=16,
        spectral_dynamics=False,
    )
    values.update(overrides)
    return SpectralDistillationConfig(**values)


def test_trainer_steps_log_components_and_save_in_timm_format(tmp_path, digits_splits):
    from hf_spectralkd.tasks.image import image_collator

    prepared = _prepared(digits_splits)
    teacher, student = _digits_vit(4, 32, 0), _digits_vit(2, 16, 1)
    trainer = SpectralDistillationTrainer(
        model=student,
        teacher_model=teacher,
        args=_config(tmp_path),
        train_dataset=prepared["train"],
        eval_dataset=prepared["validation"],
        data_collator=image_collator,
    )
    assert trainer.label_names == ["labels"]
    trainer.train()
    logs = [entry for entry in trainer.state.log_history if "loss" in entry]
    assert len(logs) == 3
    for entry in logs:
        assert entry["ce_loss"] > 0 and entry["kd_loss"] >= 0 and entry["freq_loss"] > 0
        total = 0.1 * entry["ce_loss"] + 0.9 * entry["kd_loss"] + 0.2 * entry["freq_loss"]
        assert abs(entry["loss"] - total) < 1e-4
    # 2 student blocks aligned with the 2 most intense of the teacher's 4 blocks, from timm feature maps
    assert trainer.layer_map.student_layers == [1, 2] and len(trainer.layer_map.teacher_layers) == 2
    assert len(trainer.layer_map.teacher_intensity) == 5
    metrics = trainer.evaluate()
    assert {"eval_ce_loss", "eval_kd_loss", "eval_freq_loss"} <= set(metrics) and metrics["eval_freq_loss"] > 0

    out = str(tmp_path / "saved")
    trainer.save_model(out)
    assert {"config.json", "model.safetensors", "layer_map.json"} <= set(os.listdir(out))
    with open(os.path.join(out, "config.json")) as handle:
        config = json.load(handle)
    assert config["architecture"] == "vit_tiny_patch16_224" and config["model_args"]["depth"] == 2
    assert config["label_names"] == [str(i) for i in range(10)]
    x = torch.stack([prepared["validation"][i]["pixel_values"] for i in range(4)])
    student.eval()
    with torch.no_grad():
        want = student(x)
        reloaded = timm.create_model(f"local-dir:{out}", pretrained=True).eval()
        torch.testing.assert_close(reloaded(x), want, rtol=0, atol=0)
        by_name = timm.create_model(
            "vit_tiny_patch16_224",
            pretrained=True,
            **config["model_args"],
            pretrained_cfg_overlay=dict(file=os.path.join(out, "model.safetensors"), num_classes=10),
        ).eval()
        torch.testing.assert_close(by_name(x), want, rtol=0, atol=0)
    assert get_adapter(reloaded).id2label(reloaded) == {i: str(i) for i in range(10)}


def test_teacher_renormalised_when_data_configs_differ(tmp_path, digits_splits):
    prepared = _prepared(digits_splits, n=16)
    imagenet_mean, imagenet_std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    teacher = _digits_vit(2, 32, 0, mean=imagenet_mean, std=imagenet_std)
    student = _digits_vit(1, 16, 1)  # mean = std = 0.5: the pixels are prepared for the student
    trainer = SpectralDistillationTrainer(
        model=student, teacher_model=teacher, args=_config(tmp_path), train_dataset=prepared["train"]
    )
    adapter = trainer.teacher_adapter
    np.testing.assert_allclose(adapter.input_scale.flatten().numpy(), [0.5 / s for s in imagenet_std], rtol=1e-6)
    np.testing.assert_allclose(
        adapter.input_shift.flatten().numpy(),
        [(0.5 - m) / s for m, s in zip(imagenet_mean, imagenet_std, strict=True)],
        rtol=1e-6,
    )
    raw = torch.rand(2, 3, IMG, IMG)
    for_student = (raw - 0.5) / 0.5
    for_teacher = (raw - torch.tensor(imagenet_mean).view(1, 3, 1, 1)) / torch.tensor(imagenet_std).view(1, 3, 1, 1)
    with torch.no_grad():
        got = adapter.forward(trainer.teacher, {"pixel_values": for_student}).logits
        want = teacher.eval()(for_teacher)
        unnormalised = teacher(for_student)
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)
    assert (got - unnormalised).abs().max() > 1e-3  # the re-normalisation changed what the teacher saw

    same = SpectralDistillationTrainer(
        model=_digits_vit(1, 16, 1),
        teacher_model=_digits_vit(2, 32, 0),
        args=_config(tmp_path),
        train_dataset=prepared["train"],
    )
    assert same.teacher_adapter.input_scale is None and same.teacher_adapter.input_shift is None


def test_copy_timm_blocks_student(digits_splits):
    from hf_spectralkd.tasks.image import copy_timm_blocks

    teacher = _digits_vit(4, 32, 0)
    student = copy_timm_blocks(teacher, [2, 4])
    assert len(student.blocks) == 2
    torch.testing.assert_close(student.blocks[1].attn.qkv.weight, teacher.blocks[3].attn.qkv.weight)
    torch.testing.assert_close(student.patch_embed.proj.weight, teacher.patch_embed.proj.weight)
    with pytest.raises(ValueError, match=r"student.init_layers \[5\] out of range: the teacher has 4 blocks"):
        copy_timm_blocks(teacher, [1, 5])


# ------------------------------------------------------------------------------------------ user errors
class LegacyTimmNet(torch.nn.Module):
    """A timm-style classifier (pretrained_cfg, forward_features / forward_head) without forward_intermediates,
    as models outside timm's current families are."""

    def __init__(self, num_classes=10):
        super().__init__()
        self.pretrained_cfg = {
            "architecture": "legacy_net",
            "mean": (0.5,) * 3,
            "std": (0.5,) * 3,
            "input_size": (3, IMG, IMG),
        }
        self.num_classes = num_classes
        self.conv = torch.nn.Conv2d(3, 8, 4, stride=4)
        self.head = torch.nn.Linear(8, num_classes)

    def forward_features(self, x):
        return self.conv(x)

    def forward_head(self, x):
        return self.head(x.mean(dim=(2, 3)))

    def forward(self, x):
        return self.forward_head(self.forward_features(x))


def test_clear_errors(tmp_path, digits_splits):
    prepared = _prepared(digits_splits, n=16)
    teacher = _digits_vit(3, 32, 0)
    legacy = LegacyTimmNet()
    assert isinstance(get_adapter(legacy), TimmAdapter)
    with pytest.raises(ValueError, match=r"legacy_net \(LegacyTimmNet\) has no forward_intermediates"):
        SpectralDistillationTrainer(
            model=legacy, teacher_model=teacher, args=_config(tmp_path), train_dataset=prepared["train"]
        )
    with pytest.raises(ValueError, match=r"has no forward_intermediates"):
        get_adapter(legacy).forward(legacy, {"pixel_values": torch.randn(1, 3, IMG, IMG)})
    student = _digits_vit(2, 16, 1)
    with pytest.raises(
        ValueError, match=r"teacher_layers \[4\] out of range: valid indices are 0..3 \(the teacher has 3 blocks"
    ):
        SpectralDistillationTrainer(
            model=student,
            teacher_model=teacher,
            train_dataset=prepared["train"],
            args=_config(tmp_path, teacher_layers=[1, 4], student_layers=[1, 2]),
        )
    with pytest.raises(ValueError, match=r"student_layers \[3\] out of range: .*the student has 2 blocks"):
        SpectralDistillationTrainer(
            model=student,
            teacher_model=teacher,
            train_dataset=prepared["train"],
            args=_config(tmp_path, teacher_layers=[1, 2], student_layers=[1, 3]),
        )
    with pytest.raises(ValueError, match=r"remove_unused_columns=True would drop them.*remove_unused_columns=False"):
        SpectralDistillationTrainer(
            model=student,
            teacher_model=teacher,
            train_dataset=prepared["train"],
            args=_config(tmp_path, remove_unused_columns=True),
        )
    with pytest.raises(ValueError, match=r"takes `pixel_values`; the batch has keys \['input_ids'\]"):
        get_adapter(student).forward(student, {"input_ids": torch.ones(1, 4, dtype=torch.long)})
    assert not os.path.exists(tmp_path / "out")  # nothing written before the errors


def test_evaluate_command_on_a_saved_timm_model(tmp_path, digits_splits):
    from hf_spectralkd.cli import main
    from hf_spectralkd.recipes import DataSection
    from hf_spectralkd.tasks.image import ImageProcessor, image_collator, load_image_data, transform_splits

    model = _digits_vit(1, 16, 3).eval()
    TimmAdapter().save_pretrained(model, str(tmp_path / "model"))
    out = tmp_path / "eval.json"
    code = main(
        [
            "evaluate",
            "--model",
            str(tmp_path / "model"),
            "--data",
            "sklearn:digits",
            "--task",
            "image-classification",
            "--max-samples",
            "40",
            "--output",
            str(out),
        ]
    )
    assert code == 0
    result = json.loads(out.read_text())
    # the same 40 test images, scored here directly
    splits, _, _ = load_image_data(DataSection(source="sklearn:digits", max_eval_samples=40))
    test = transform_splits({"test": splits["test"]}, ImageProcessor.from_model(model))["test"]
    batch = image_collator([test[i] for i in range(len(test))])
    with torch.no_grad():
        accuracy = (model(batch["pixel_values"]).argmax(-1) == batch["labels"]).float().mean().item()
    assert result["num_samples"] == 40
    assert abs(result["metrics"]["accuracy"] - accuracy) < 1e-9


def test_compare_command_on_two_saved_timm_models(tmp_path, digits_splits):
    """`hf-spectralkd compare` detects timm directories, runs both models over the same seeded image sample (each with
    its own normalisation) and reports the curves the analysis functions give on those images."""
    from hf_spectralkd import collect_profile
    from hf_spectralkd.cli import main
    from hf_spectralkd.sampling import sample_indices
    from hf_spectralkd.tasks.image import ImageProcessor, image_collator, transform_splits

    teacher, student = (
        _digits_vit(4, 32, 0).eval(),
        _digits_vit(2, 16, 1, mean=(0.4, 0.4, 0.4), std=(0.3, 0.3, 0.3)).eval(),
    )
    TimmAdapter().save_pretrained(teacher, str(tmp_path / "teacher"))
    TimmAdapter().save_pretrained(student, str(tmp_path / "student"))
    (tmp_path / "layer_map.json").write_text(json.dumps({"teacher_layers": [2, 4], "student_layers": [1, 2]}))
    out = tmp_path / "cmp"
    assert (
        main(
            [
                "compare",
                "--teacher",
                str(tmp_path / "teacher"),
                "--student",
                str(tmp_path / "student"),
                "--data",
                "sklearn:digits",
                "--split",
                "validation",
                "--max-samples",
                "40",
                "--seed",
                "3",
                "--layer-map",
                str(tmp_path / "layer_map.json"),
                "--output",
                str(out),
            ]
        )
        == 0
    )
    report = json.loads((out / "compare.json").read_text())
    assert report["task"] == "image-classification" and report["num_samples"] == 40
    assert report["pairs"] == [[1, 2], [2, 4]] and (out / "compare.png").read_bytes()[:4] == b"\x89PNG"
    rows = digits_splits[0]["validation"]
    rows = rows.select(sample_indices(len(rows), 40, 3))
    for role, model in (("teacher", teacher), ("student", student)):
        prepared = transform_splits({"x": rows}, ImageProcessor.from_model(model))["x"]
        batch = image_collator([prepared[i] for i in range(len(prepared))])
        expected = collect_profile(model, [{"pixel_values": batch["pixel_values"]}]).intensity.numpy()
        np.testing.assert_allclose(report[role]["intensity"], expected, rtol=1e-5)
    assert len(report["teacher"]["intensity"]) == 5 and len(report["student"]["intensity"]) == 3
