"""The dataparser on captures written independently (tests/zju_fixture.py): geometry, splits, files."""

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
from zju_fixture import write_independent_zju_capture

from dataparsers.zju_mocap.camera_conversion import cameras_to_opencv, project_points
from dataparsers.zju_mocap.capture import read_capture, read_mask
from dataparsers.zju_mocap.zju_dataparser import ZJUMocapDataParserConfig

NUM_CAMERAS, NUM_FRAMES = 4, 3
pytestmark = pytest.mark.filterwarnings("ignore:Using a non-tuple sequence:UserWarning")


@pytest.fixture(scope="module")
def smpl_file(synthetic_smpl_dir):
    return synthetic_smpl_dir / "smpl" / "SMPL_NEUTRAL.pkl"


@pytest.fixture(scope="module")
def capture_b(tmp_path_factory, smpl_file):
    root = tmp_path_factory.mktemp("zju") / "CoreView_377"
    truth = write_independent_zju_capture(root, smpl_file, "B", num_cameras=NUM_CAMERAS, num_frames=NUM_FRAMES)
    return root, truth


@pytest.fixture(scope="module")
def capture_313(tmp_path_factory, smpl_file):
    root = tmp_path_factory.mktemp("zju") / "CoreView_313"
    truth = write_independent_zju_capture(
        root, smpl_file, "313", num_frames=2, render_cameras=(0, 19, 20), masks="mask", params="params"
    )
    return root, truth


def parse(root, body_dir, split="train", **overrides):
    options = dict(
        split_preset="custom", train_cameras=tuple(range(NUM_CAMERAS)), train_frames=tuple(range(NUM_FRAMES))
    )
    options.update(overrides)
    config = ZJUMocapDataParserConfig(data=root, body_model_dir=body_dir, **options)
    return config.setup().get_dataparser_outputs(split)


def test_capture_reads_the_raw_layout(capture_b):
    root, truth = capture_b
    capture = read_capture(root)
    assert capture.camera_names == [f"Camera_B{k}" for k in range(1, NUM_CAMERAS + 1)]
    assert (
        np.allclose(capture.T, truth["T"]) and np.allclose(capture.K, truth["K"]) and np.allclose(capture.D, truth["D"])
    )
    assert capture.params_dir.name == "new_params" and capture.mask_dir == "mask_cihp"
    assert capture.params["poses"].shape == (NUM_FRAMES, 72) and capture.params["shapes"].shape == (NUM_FRAMES, 10)
    assert np.allclose(capture.params["Th"], truth["Th"], atol=1e-6)
    assert capture.vertices.shape == (NUM_FRAMES, 6890, 3)
    assert capture.image_size(0) == (160, 120)
    assert read_mask(capture.mask_paths[0][0]).dtype == bool


def test_313_naming_one_based_params_and_camera_names(capture_313, synthetic_smpl_dir):
    root, truth = capture_313
    capture = read_capture(root, camera_indices=[0, 19, 20], frame_indices=[0, 1], masks="auto")
    assert capture.camera_names == ["Camera (1)", "Camera (22)", "Camera (23)"]
    assert capture.param_file_indices == [1, 2] and capture.params_dir.name == "params" and capture.mask_dir == "mask"
    assert np.allclose(capture.params["Th"], truth["Th"], atol=1e-6)
    assert capture.vertices is not None and np.abs(capture.vertices - truth["vertices"]).max() < 1e-5
    out = parse(
        root, synthetic_smpl_dir, train_cameras=(0, 19), test_cameras=(20,), train_frames=(0, 1), test_frames=(1,)
    )
    assert [p.parent.name for p in out.image_filenames] == ["Camera (1)", "Camera (22)"] * 2
    test = parse(root, synthetic_smpl_dir, "test", train_cameras=(0, 19), test_cameras=(20,), train_frames=(0, 1),
                 test_frames=(1,), test_split="novel_pose")  # fmt: skip
    assert [p.name for p in test.image_filenames] == ["CoreView_313_Camera_(23)_0002_2019-08-23_16-08-50.592.jpg"]
    assert test.cameras.metadata["camera_idx"].flatten().tolist() == [20]


def test_posed_body_matches_the_fitted_vertices(capture_b, synthetic_smpl_dir):
    root, truth = capture_b
    out = parse(root, synthetic_smpl_dir)
    body = out.metadata["body_frames"]
    assert np.abs(body.given_vertices.numpy() - truth["vertices"]).max() < 1e-3
    assert body.given_bone_transforms.shape == (NUM_FRAMES, 24, 4, 4)
    assert body.canonical_vertices.shape == (6890, 3) and body.faces.shape == (13776, 3)
    assert body.skinning_weights.shape == (6890, 24)
    assert body.frame_ids.tolist() == list(range(NUM_FRAMES))
    assert out.metadata["body_model_name"] == "smpl" and "mask_color" not in out.metadata
    assert out.alpha_color is None and out.dataparser_scale == 1.0
    assert torch.equal(out.dataparser_transform, torch.eye(4)[:3])
    aabb = out.scene_box.aabb.numpy()
    assert (aabb[0] < truth["vertices"].min((0, 1))).all() and (aabb[1] > truth["vertices"].max((0, 1))).all()
    assert np.allclose(aabb[1] - truth["vertices"].max((0, 1)), 0.2, atol=1e-4)


def test_projections_with_parsed_cameras_land_in_the_masks(capture_b, synthetic_smpl_dir):
    root, truth = capture_b
    out = parse(root, synthetic_smpl_dir)
    cameras = out.cameras
    K, R, T, D = cameras_to_opencv(cameras)
    assert np.allclose(T[:NUM_CAMERAS], truth["T"], atol=1e-5) and np.allclose(D[:NUM_CAMERAS], truth["D"], atol=1e-6)
    frames = cameras.metadata["frame_idx"][:, 0].numpy()
    vertices = out.metadata["body_frames"].given_vertices.numpy()
    for image in range(len(out.image_filenames)):
        pixels, depth = project_points(K[image], R[image], T[image], D[image], vertices[frames[image]])
        mask = read_mask(out.mask_filenames[image])
        u, v = np.round(pixels).astype(int).T
        assert (u >= 0).all() and (u < mask.shape[1]).all() and (v >= 0).all() and (v < mask.shape[0]).all()
        assert mask[v, u].mean() > 0.99
        grown = np.zeros_like(mask)
        for dy in (-1, 0, 1):
            for dx in (-1, 0, 1):
                grown |= np.roll(mask, (dy, dx), axis=(0, 1))
        assert grown[v, u].all()

        # rays through the projected pixels (nerfstudio: coords are (row, col), pixel centres at +0.5)
        subset = np.arange(0, len(pixels), 97)
        coords = torch.as_tensor(pixels[subset][:, ::-1] + 0.5, dtype=torch.float32)
        rays = cameras.generate_rays(camera_indices=torch.full((len(subset), 1), image), coords=coords)
        offset = vertices[frames[image]][subset] - rays.origins.numpy()
        direction = rays.directions.numpy()
        distance = np.linalg.norm(np.cross(offset, direction), axis=-1)
        assert (distance < 1e-3 * depth[subset]).all(), distance.max()
        assert (rays.metadata["frame_idx"][:, 0].numpy() == frames[image]).all()


def test_frame_idx_and_times_per_image(capture_b, synthetic_smpl_dir):
    root, _ = capture_b
    out = parse(root, synthetic_smpl_dir, train_cameras=(1, 2), train_frames=(0, 2), test_frames=(1,))
    assert out.cameras.shape == (4,)
    table = out.metadata["body_frames"].frame_ids.tolist()
    assert table == [0, 1, 2]  # union of train (0, 2), novel view (0) and novel pose (1)
    frame_idx = out.cameras.metadata["frame_idx"][:, 0].tolist()
    assert frame_idx == [0, 0, 2, 2] and [table[i] for i in frame_idx] == [0, 0, 2, 2]
    assert out.cameras.times[:, 0].tolist() == [0.0, 0.0, 1.0, 1.0]
    assert out.cameras.metadata["camera_idx"][:, 0].tolist() == [1, 2, 1, 2]
    assert [p.name for p in out.image_filenames] == ["000000.jpg", "000000.jpg", "000002.jpg", "000002.jpg"]
    assert [p.parent.name for p in out.image_filenames] == ["Camera_B2", "Camera_B3"] * 2
    test = parse(root, synthetic_smpl_dir, "test", train_cameras=(1, 2), train_frames=(0, 2), test_frames=(1,),
                 test_split="novel_pose")  # fmt: skip
    assert test.cameras.metadata["frame_idx"][:, 0].tolist() == [1, 1]
    assert test.cameras.metadata["camera_idx"][:, 0].tolist() == [0, 3]
    assert test.cameras.times[:, 0].tolist() == [0.5, 0.5]
    assert torch.equal(test.metadata["body_frames"].given_vertices, out.metadata["body_frames"].given_vertices)
    from dataparsers.zju_mocap.zju_dataparser import ZJUMocapDataParser

    assert ZJUMocapDataParser.includes_time


def test_downscale_writes_consistent_copies(capture_b, synthetic_smpl_dir, tmp_path):
    root, _ = capture_b
    out = parse(
        root, synthetic_smpl_dir, downscale_factor=2, cache_dir=tmp_path, train_cameras=(0, 1), train_frames=(0,)
    )
    assert all(str(p).startswith(str(tmp_path)) for p in out.image_filenames + out.mask_filenames)
    assert out.cameras.width[:, 0].tolist() == [60, 60] and out.cameras.height[:, 0].tolist() == [80, 80]
    from PIL import Image

    assert Image.open(out.image_filenames[0]).size == (60, 80) and np.array(Image.open(out.mask_filenames[0])).ndim == 2
    K, R, T, D = cameras_to_opencv(out.cameras)
    vertices = out.metadata["body_frames"].given_vertices.numpy()[0]
    for image in range(2):
        pixels, _ = project_points(K[image], R[image], T[image], D[image], vertices)
        u, v = np.round(pixels).astype(int).T
        assert read_mask(out.mask_filenames[image])[v, u].mean() > 0.95


def test_union_masks_are_merged_into_single_channel_copies(capture_b, synthetic_smpl_dir, tmp_path):
    root, _ = capture_b
    copy = tmp_path / "CoreView_377"
    shutil.copytree(root, copy)
    shutil.copytree(copy / "mask_cihp", copy / "mask")
    out = parse(copy, synthetic_smpl_dir, masks="union", train_cameras=(0,), train_frames=(0, 1))
    assert all("hfavatar_cache" in str(p) for p in out.mask_filenames)
    assert (read_mask(out.mask_filenames[1]) == read_mask(copy / "mask_cihp" / "Camera_B1" / "000001.png")).all()


def test_body_model_json_picks_the_model(capture_b, synthetic_smpl_dir, tmp_path):
    root, _ = capture_b
    copy = tmp_path / "CoreView_377"
    shutil.copytree(root, copy)
    (copy / "body_model.json").write_text(json.dumps({"kind": "smpl", "gender": "neutral"}))
    out = parse(copy, synthetic_smpl_dir, train_cameras=(0,), train_frames=(0,))
    assert out.metadata["body_model_name"] == "smpl"
    (copy / "body_model.json").write_text(json.dumps({"kind": "robot"}))
    from hfavatar_ns.errors import InputError

    with pytest.raises(InputError, match="body_model.json"):
        parse(copy, synthetic_smpl_dir, train_cameras=(0,), train_frames=(0,))


def test_registered_with_nerfstudio():
    code = "from nerfstudio.configs.dataparser_configs import all_dataparsers; print('zju-mocap' in all_dataparsers)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.stdout.strip().endswith("True"), result.stderr[-2000:]


def test_lone_training_camera_is_recorded_for_monocular_splits(capture_b, synthetic_smpl_dir):
    """Pose refinement holds depth on one-camera captures: the parser records that camera's world position,
    for the test split too (the body tables are the training run's)."""
    root, _ = capture_b
    options = dict(train_cameras=(2,), train_frames=(0, 2), test_frames=(1,), test_cameras=(0, 1))
    train = parse(root, synthetic_smpl_dir, "train", **options)
    centre = train.cameras.camera_to_worlds[0, :, 3]  # where nerfstudio's rays of that camera start
    for out in (train, parse(root, synthetic_smpl_dir, "test", **options)):
        assert torch.allclose(out.metadata["body_frames"].lone_training_camera, centre, atol=1e-5)
    several = parse(root, synthetic_smpl_dir, train_cameras=(1, 2), train_frames=(0,)).metadata["body_frames"]
    assert several.lone_training_camera is None
