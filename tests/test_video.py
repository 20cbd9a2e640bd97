"""hfavatar-process-video: each stage on its own, the whole path on a synthetic video with known truth,
a real photograph, and every bad input."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from hfavatar_ns.body.factory import make_body_model
from hfavatar_ns.errors import InputError
from hfavatar_ns.video.body_fit import (
    BodyFitConfig,
    FitObservations,
    fit_body,
    kabsch_rotation,
    matrix_to_axis_angle,
    project,
    skeleton_scale,
    translation_from_projections,
)
from hfavatar_ns.video.capture_writer import capture_split
from hfavatar_ns.video.frames import (
    choose_frames,
    display_turn,
    focal_length_px,
    open_source,
    output_size,
    write_video,
)
from hfavatar_ns.video.landmarks import OBSERVED_JOINTS
from hfavatar_ns.video.masks import body_silhouette, clean_person_masks, mask_iou
from hfavatar_ns.video.mediapipe_env import is_installed
from hfavatar_ns.video.pipeline import frame_gaps, usable_frames

needs_mediapipe = pytest.mark.skipif(
    not is_installed(), reason="mediapipe environment missing: run `hfavatar-process-video --install-mediapipe` (make test does)"
)


def test_frame_choice_and_sizes():
    assert choose_frames(10, 4) == [0, 3, 6, 9]
    assert choose_frames(5, 20) == [0, 1, 2, 3, 4]
    assert choose_frames(10, stride=4) == [0, 4, 8]
    with pytest.raises(InputError):
        choose_frames(10, 4, 2)
    # Portrait phone video: landscape frames and a display matrix turning them by -90 degrees (clockwise).
    assert (display_turn(-90.0), display_turn(90.0), display_turn(180.0), display_turn(0.0)) == (3, 1, 2, 0)
    assert output_size(1920, 1080, 540) == (540, 304)
    assert output_size(640, 480, 1000) == (640, 480)


def test_focal_length_sources():
    focal, said = focal_length_px(1000, 500, None, 90.0, None)
    assert focal == pytest.approx(500.0) and "--fov-deg" in said
    assert focal_length_px(1000, 500, 800.0, None, 26.0)[0] == 800.0
    focal, said = focal_length_px(1000, 500, None, None, 36.0)
    assert focal == pytest.approx(1000.0) and "metadata" in said
    focal, said = focal_length_px(1000, 500, None, None, None)
    assert focal == pytest.approx(500 / math.tan(math.radians(30))) and "default" in said
    with pytest.raises(InputError):
        focal_length_px(1000, 500, 800.0, 60.0, None)


def test_mask_cleaning_drops_other_regions_and_fills_pinholes():
    segmentation = np.zeros((1, 100, 100), np.uint8)
    segmentation[0, 20:80, 30:60] = 230  # the person
    segmentation[0, 50, 45] = 0  # a pinhole
    segmentation[0, 10:20, 80:95] = 200  # someone else
    landmarks = np.array([[[45.0, 30.0], [40.0, 70.0]]])
    result = clean_person_masks(segmentation, landmarks, np.ones((1, 2), bool))
    assert result.dropped_regions == 1 and result.filled_pixels == 1
    assert result.masks[0, 20:80, 30:60].all() and not result.masks[0, 10:20, 80:95].any()


def test_usable_frames_need_the_whole_body_in_view():
    landmarks = np.full((3, 33, 3), 50.0)
    landmarks[1, 27, 1] = 120.0  # an ankle below the image
    found = np.array([True, True, False])
    assert usable_frames(found, landmarks, 100, 100).tolist() == [True, False, False]
    assert frame_gaps([0, 2, 4, 10]).tolist() == [1.0, 1.0, 3.0]


def test_one_camera_split_holds_out_the_last_frames():
    split = capture_split(50)
    assert split["train_frames"] == [0, 45] and split["novel_pose_frames"] == [45, 50]
    assert capture_split(6)["novel_pose_frames"] is None


def test_single_camera_capture_evaluates_held_out_frames(tmp_path):
    from dataparsers.zju_mocap.splits import capture_split as read_split

    (tmp_path / "split.json").write_text(json.dumps(capture_split(50)))
    selection = read_split("val", tmp_path, num_cameras=1, num_frames=50)
    assert tuple(selection.cameras) == (0,) and min(selection.frames) >= 45
    with pytest.raises(InputError, match="novel_pose"):
        read_split("novel_view", tmp_path, num_cameras=1, num_frames=50)


def test_rigid_helpers_recover_known_motion():
    generator = torch.Generator().manual_seed(0)
    points = torch.randn(2, 6, 3, generator=generator)
    rotation = torch.linalg.qr(torch.randn(3, 3, generator=generator))[0]
    rotation = rotation * torch.sign(torch.det(rotation))
    assert torch.allclose(kabsch_rotation(points, points @ rotation.T + 1.0), rotation.expand(2, 3, 3), atol=1e-4)
    assert torch.allclose(matrix_to_axis_angle(torch.eye(3)[None]), torch.zeros(1, 3), atol=1e-6)
    intrinsics = torch.tensor([[300.0, 0, 64], [0, 300, 64], [0, 0, 1]])
    shift = torch.tensor([[0.2, -0.1, 3.0], [0.0, 0.3, 4.0]])
    pixels = project(points * 0.3 + shift[:, None], intrinsics)
    found = translation_from_projections(points * 0.3, pixels, torch.ones(2, 6), intrinsics)
    assert torch.allclose(found, shift, atol=1e-3)


def test_skeleton_scale_is_the_size_ratio():
    rest = make_body_model("free").canonical().joints[list(OBSERVED_JOINTS)]
    metric = (rest * 0.8)[None].repeat(3, 1, 1)
    assert skeleton_scale(rest, metric, torch.ones(3, len(OBSERVED_JOINTS))) == pytest.approx(1.25, rel=1e-4)


def _known_bodies(num_frames: int = 4, size: int = 160):
    """Posed free bodies seen by one camera, their exact 2D joints, 3D joints and silhouettes."""
    body = make_body_model("free")
    generator = torch.Generator().manual_seed(3)
    poses = torch.zeros(num_frames, 72)
    for joint, scale in ((1, 0.4), (2, 0.4), (4, 0.6), (5, 0.6), (16, 0.3), (17, 0.3), (18, 0.5), (19, 0.5)):
        poses[:, joint * 3 : joint * 3 + 3] = torch.rand(num_frames, 3, generator=generator) * scale - scale / 2
    poses[:, 4 * 3] = poses[:, 4 * 3].abs()  # knees bend forwards
    poses[:, 5 * 3] = poses[:, 5 * 3].abs()
    # Upright, facing the camera (OpenCV axes: y down, z forward), turning a little from frame to frame.
    upright = torch.tensor([math.pi, 0.0, 0.0])
    Rh = torch.stack([matrix_to_axis_angle(torch.from_numpy(_rotation(upright.numpy(), 0.3 * i)))[0] for i in range(num_frames)])
    Th = torch.tensor([[0.0, 0.1, 3.0]]).repeat(num_frames, 1) + torch.linspace(0, 0.3, num_frames)[:, None]
    posed = body.pose(poses, None, Rh, Th)
    intrinsics = torch.tensor([[220.0, 0, size / 2], [0, 220.0, size / 2], [0, 0, 1]])
    faces = body.canonical().faces.numpy()
    masks = np.stack([body_silhouette(project(v, intrinsics).numpy(), faces, size, size) for v in posed.vertices])
    joints = posed.joints[:, list(OBSERVED_JOINTS)]
    return body, posed, intrinsics, masks, joints


def _rotation(axis_angle: np.ndarray, yaw: float) -> np.ndarray:
    import roma

    base = roma.rotvec_to_rotmat(torch.from_numpy(axis_angle).float())
    turn = roma.rotvec_to_rotmat(torch.tensor([0.0, yaw, 0.0]))
    return (base @ turn).numpy()[None]


def test_body_fit_recovers_known_bodies_from_exact_observations():
    body, posed, intrinsics, masks, joints = _known_bodies()
    observations = FitObservations(
        joints_2d=project(joints, intrinsics),
        joint_confidence=torch.ones(joints.shape[:2]),
        bones_3d=joints - joints[:, 6:8].mean(dim=1, keepdim=True),
        masks=torch.from_numpy(masks),
        intrinsics=intrinsics,
        frame_gaps=torch.ones(len(joints) - 1),
    )
    config = BodyFitConfig(pose_iterations=100, iterations=60, silhouette_vertices=400, mask_points=96)
    fit = fit_body(body, observations, config, progress=False)
    fitted = body.pose(fit.poses, None, fit.Rh, fit.Th)
    centred = lambda j: j - j[:, :1]  # noqa: E731
    error_mm = (centred(fitted.joints) - centred(posed.joints)).norm(dim=-1).mean() * 1000
    assert fit.joint_error_px.mean() < 2.0
    assert error_mm < 40.0, error_mm
    rest_error_mm = (centred(body.pose(torch.zeros_like(fit.poses), None, fit.Rh, fit.Th).joints) - centred(posed.joints)).norm(dim=-1).mean() * 1000
    assert error_mm < 0.5 * rest_error_mm
    silhouettes = np.stack([body_silhouette(project(v, intrinsics).numpy(), body.canonical().faces.numpy(), 160, 160) for v in fitted.vertices])
    assert mask_iou(silhouettes, masks).mean() > 0.8


def test_video_round_trip(tmp_path):
    frames = [np.full((48, 64, 3), 10 * i, np.uint8) for i in range(6)]
    path = write_video(iter(frames), tmp_path / "clip.mp4", fps=5)
    source = open_source(path)
    assert (source.num_frames, source.width, source.height) == (6, 64, 48)


def _process(input_path: Path, output: Path, **overrides):
    from hfavatar_ns.video.pipeline import ProcessVideoConfig, process_video

    config = ProcessVideoConfig(input=input_path, output=output, progress=False, **overrides)
    config.fit = BodyFitConfig(pose_iterations=60, iterations=40, silhouette_vertices=400, mask_points=96)
    return process_video(config)


def test_unreadable_and_empty_inputs_say_what_is_wrong(tmp_path):
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"not a video at all")
    with pytest.raises(InputError, match="broken.mp4"):
        _process(broken, tmp_path / "out")
    with pytest.raises(InputError):
        _process(tmp_path / "missing.mp4", tmp_path / "out")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError):
        _process(tmp_path / "empty", tmp_path / "out")
    assert not (tmp_path / "out").exists()


@needs_mediapipe
def test_no_person_is_an_error_and_writes_nothing(tmp_path):
    generator = np.random.default_rng(0)
    frames = [generator.integers(0, 255, (96, 96, 3), dtype=np.uint8) for _ in range(4)]
    video = write_video(iter(frames), tmp_path / "noise.mp4", fps=5)
    with pytest.raises(InputError, match="No person"):
        _process(video, tmp_path / "out")
    assert not (tmp_path / "out").exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".out")]


@pytest.fixture(scope="module")
def walking_video(tmp_path_factory):
    """A one-camera synthetic video with its true capture beside it."""
    from hfavatar_ns.synth import SynthConfig, generate_capture
    from hfavatar_ns.synth.writer import write_camera_video

    folder = tmp_path_factory.mktemp("walking")
    capture = generate_capture(
        folder / "truth", SynthConfig.from_preset("mono", num_cameras=1, num_frames=12, resolution=192), progress=False
    )
    return write_camera_video(capture, folder / "walk.mp4", fps=10), capture


@needs_mediapipe
def test_video_to_capture_matches_the_truth_and_trains(walking_video, tmp_path):
    from dataparsers.zju_mocap.zju_dataparser import ZJUMocapDataParserConfig

    video, truth = walking_video
    annots = np.load(truth / "annots.npy", allow_pickle=True).item()
    focal = float(annots["cams"]["K"][0][0][0])
    output = tmp_path / "capture"
    report = _process(video, output, focal_px=focal, long_side=None)
    assert report["frames_kept"] == 12 and report["fit_joint_error_px_mean"] < 6.0
    for name in ("annots.npy", "split.json", "body_model.json", "landmarks.npz", "check/overlays.png"):
        assert (output / name).exists(), name
    declared = json.loads((output / "body_model.json").read_text())
    assert declared["exact_fits"] is False and declared["exact_masks"] is False

    from PIL import Image

    masks = np.stack([np.array(Image.open(output / "mask_cihp/Camera_B1" / f"{i:06d}.png")) > 0 for i in range(12)])
    true_masks = np.stack([np.array(Image.open(truth / "mask_cihp/Camera_B1" / f"{i:06d}.png")) > 0 for i in range(12)])
    assert mask_iou(masks, true_masks).mean() > 0.9

    outputs = ZJUMocapDataParserConfig(data=output).setup().get_dataparser_outputs("train")
    assert len(outputs.image_filenames) == 11  # the last frame is held out
    held_out = ZJUMocapDataParserConfig(data=output).setup().get_dataparser_outputs("val")
    assert len(held_out.image_filenames) >= 1

    with pytest.raises(InputError, match="--overwrite"):
        _process(video, output)


@needs_mediapipe
def test_focal_length_follows_the_resize(walking_video, tmp_path):
    video, _ = walking_video
    report = _process(video, tmp_path / "smaller", focal_px=300.0, long_side=144, min_frames=1, num_frames=3)
    annots = np.load(tmp_path / "smaller" / "annots.npy", allow_pickle=True).item()
    assert report["image_size"] == [144, 144] and annots["cams"]["K"][0][0, 0] == pytest.approx(225.0)


@needs_mediapipe
def test_too_few_usable_frames_is_an_error(walking_video, tmp_path):
    video, _ = walking_video
    with pytest.raises(InputError, match="at least 20"):
        _process(video, tmp_path / "out", min_frames=20)


@needs_mediapipe
def test_a_real_photograph():
    """scikit-image's astronaut: a real photo, upper body only, in a bulky suit."""
    import tempfile

    import cv2
    from skimage import data

    from hfavatar_ns.video.landmarks import observed_joints
    from hfavatar_ns.video.mediapipe_env import run_landmarker

    image = data.astronaut()
    height, width = image.shape[:2]
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "astronaut.png"
        cv2.imwrite(str(path), image[..., ::-1])
        found = run_landmarker([path], video=False, progress=False)
    assert found.found.all()
    cleaned = clean_person_masks(found.segmentation, found.landmarks[..., :2], found.visibility > 0.5)
    face = found.landmarks[0, 0, :2].astype(int)
    assert cleaned.masks[0, face[1], face[0]] and 0.25 < cleaned.masks.mean() < 0.7
    joints_2d, confidence = observed_joints(found.landmarks[..., :2], found.visibility)
    joints_3d, _ = observed_joints(found.world, found.visibility)
    focal, _ = focal_length_px(width, height, None, None, None)
    intrinsics = torch.tensor([[focal, 0, width / 2], [0, focal, height / 2], [0, 0, 1]], dtype=torch.float32)
    observations = FitObservations(
        torch.from_numpy(joints_2d).float(), torch.from_numpy(confidence).float(), torch.from_numpy(joints_3d).float(),
        torch.from_numpy(cleaned.masks), intrinsics, torch.zeros(0),
    )
    body = make_body_model("free")
    fit = fit_body(body, observations, BodyFitConfig(pose_iterations=80, iterations=60), progress=False)
    assert fit.joint_error_px.mean() < 20.0  # hips and legs hidden, shoulders padded: few, uncertain landmarks
    vertices = body.pose(fit.poses, None, fit.Rh, fit.Th).vertices[0]
    silhouette = body_silhouette(project(vertices, intrinsics).numpy(), body.canonical().faces.numpy(), width, height)
    inside = (silhouette & cleaned.masks[0]).sum() / silhouette.sum()
    assert inside > 0.9
    assert mask_iou(silhouette, cleaned.masks[0]) > 0.75  # the body is slimmer than the suit around it


def test_command_line_errors_are_one_message(tmp_path, monkeypatch, capsys):
    from hfavatar_ns.scripts import process_video as command

    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"\x00" * 64)
    for argv in ([], [str(broken), str(tmp_path / "out")]):
        monkeypatch.setattr("sys.argv", ["hfavatar-process-video", *argv])
        with pytest.raises(SystemExit) as exited:
            command.main()
        assert exited.value.code == 2
        error = capsys.readouterr().err
        assert error.startswith("error: ") and "Traceback" not in error
