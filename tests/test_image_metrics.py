"""Evaluation metrics: the mask-bounding-box crop protocol, LPIPS only offline, ns-eval's JSON."""

import json
import subprocess
import sys

import pytest
import torch

from hfavatar_ns.evaluation import image_metrics
from hfavatar_ns.evaluation.image_metrics import avatar_image_metrics, crop_to_mask, mask_bounding_box


def test_mask_bounding_box_known_answer():
    mask = torch.zeros(20, 30, 1)
    mask[5:9, 10:21] = 1
    assert mask_bounding_box(mask) == (5, 9, 10, 21)
    assert crop_to_mask(torch.rand(20, 30, 3), mask).shape == (4, 11, 3)
    assert mask_bounding_box(torch.zeros(4, 6)) == (0, 4, 0, 6)  # empty: whole image


def test_bbox_metrics_ignore_the_easy_background():
    target = torch.zeros(40, 40, 3)
    mask = torch.zeros(40, 40, 1)
    mask[10:30, 12:28] = 1
    target[10:30, 12:28] = 0.8
    predicted = target.clone()
    predicted[10:30, 12:28] += 0.1 * torch.randn(20, 16, 3)
    metrics = avatar_image_metrics(predicted, target, mask)
    assert set(metrics) == {"psnr", "ssim", "psnr_bbox", "ssim_bbox"}
    # The same error over fewer pixels: the crop scores lower than the whole (mostly black) image.
    assert metrics["psnr_bbox"] < metrics["psnr"] - 3
    assert metrics["ssim_bbox"] < metrics["ssim"]


def test_lpips_is_not_built_without_local_weights(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    monkeypatch.setattr(image_metrics, "_lpips_note_printed", False)
    assert image_metrics.lpips_metric("vgg") is None
    assert image_metrics.lpips_metric("vgg") is None
    assert capsys.readouterr().out.count("LPIPS") == 1  # one note only


def test_ns_eval_reports_the_crop_metrics(tiny_avatar_run, tmp_path):
    out = tmp_path / "eval.json"
    command = [sys.executable, "-m", "nerfstudio.scripts.eval", "--load-config", str(tiny_avatar_run),
               "--output-path", str(out)]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    results = json.loads(out.read_text())["results"]
    for key in ("psnr", "ssim", "psnr_bbox", "ssim_bbox"):
        assert key in results and results[key] == results[key]
    if not image_metrics.lpips_available("vgg"):
        assert "lpips" not in results


def test_squared_error_is_split_by_distance_from_the_mask_outline():
    from hfavatar_ns.evaluation.image_metrics import signed_outline_distance, squared_error_by_outline_distance

    mask = torch.zeros(32, 32, 1)
    mask[8:24, 8:24] = 1.0
    distance = signed_outline_distance(mask)
    assert distance[8, 15] == -1 and distance[7, 15] == 1  # the person's outermost pixel, the one beside it
    assert distance[15, 15] == -8 and distance[0, 15] == 8
    target = torch.zeros(32, 32, 3)
    predicted = target.clone()
    predicted[7, 10:20] = 0.5  # a halo one pixel outside: 10 pixels at 0.25
    predicted[14:18, 14:18] = 1.0  # a wrong colour deep inside: 16 pixels at 1
    bands = squared_error_by_outline_distance(predicted, target, mask)
    expected = {"inside_6+": 16.0, "inside_3-6": 0.0, "inside_0-3": 0.0, "outside_0-1": 2.5, "outside_1+": 0.0}
    assert bands == pytest.approx(expected)
    assert sum(bands.values()) == pytest.approx(float(((predicted - target) ** 2).mean(-1).sum()))
