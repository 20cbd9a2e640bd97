"""The PeopleSnapshot dataparser on a tiny subject written here in the release's exact format.

The writer below imports nothing from ``dataparsers``: the video is encoded with PyAV, camera.pkl is
pickled with protocol 2 (as videoavatars' Python-2 scripts wrote it), the HDF5 files are written with
h5py, and the body, its joints and the expected vertices come from ``smplx`` posed the SMPL way
(``global_orient`` about the root joint, then ``transl``).
"""

from __future__ import annotations

import os
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import h5py
import numpy as np
import pytest
import torch

from dataparsers.people_snapshot.people_snapshot_dataparser import PeopleSnapshotDataParserConfig
from dataparsers.people_snapshot.splits import ANIM_NERF_PROTOCOL, FrameOverrides, split_frames, table_frames
from dataparsers.zju_mocap.capture import read_mask
from hfavatar_ns.body.smpl_convention import easymocap_to_smpl, smpl_to_easymocap
from hfavatar_ns.errors import InputError
from smpl_fixture import write_synthetic_smpl

WIDTH, HEIGHT = 64, 48
NUM_FRAMES = 12
CAMERA = {
    "camera_f": np.array([60.0, 62.0]),
    "camera_c": np.array([31.3, 24.6]),
    "camera_k": np.array([0.05, -0.02, 0.001, -0.001, 0.003]),
    "camera_rt": np.array([0.04, -0.08, 0.02]),
    "camera_t": np.array([0.1, -0.05, 0.2]),
    "width": WIDTH,
    "height": HEIGHT,
}
pytestmark = [
    pytest.mark.filterwarnings("ignore:Using a non-tuple sequence:UserWarning"),
    pytest.mark.filterwarnings("ignore:.*which all three share:UserWarning"),  # the fixture's extra pose row
]


# ------------------------------------------------------------------------------------------------
# the fixture, in the release's format


def grey_level(frame: int) -> int:
    return 20 + 15 * frame


def write_video(path: Path, num_frames: int) -> None:
    """An H.264 mp4 whose frame ``i`` is a flat grey of level :func:`grey_level` (so order is checkable)."""
    import av

    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        stream.options = {"crf": "1"}
        for i in range(num_frames):
            image = np.full((HEIGHT, WIDTH, 3), grey_level(i), dtype=np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="bgr24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def smpl_posed(smpl_file: Path, poses: np.ndarray, trans: np.ndarray, betas: np.ndarray):
    """Vertices [F,V,3] and the 24 joints [F,24,3] of SMPL posed the SMPL way, with smplx."""
    import smplx

    model = smplx.SMPL(str(smpl_file), num_betas=10)
    count = len(poses)
    with torch.no_grad():
        out = model(
            betas=torch.as_tensor(betas, dtype=torch.float32).expand(count, -1),
            global_orient=torch.as_tensor(poses[:, :3], dtype=torch.float32),
            body_pose=torch.as_tensor(poses[:, 3:], dtype=torch.float32),
            transl=torch.as_tensor(trans, dtype=torch.float32),
        )
    return out.vertices.numpy().astype(np.float64), out.joints[:, :24].numpy().astype(np.float64)


def project(points: np.ndarray) -> np.ndarray:
    """OpenCV projection of world points through the pkl's camera: [P,2] pixels."""
    K = np.array([[CAMERA["camera_f"][0], 0, CAMERA["camera_c"][0]], [0, CAMERA["camera_f"][1], CAMERA["camera_c"][1]],
                  [0, 0, 1]])  # fmt: skip
    points = np.ascontiguousarray(points, dtype=np.float64)
    pixels, _ = cv2.projectPoints(points, CAMERA["camera_rt"], CAMERA["camera_t"], K, CAMERA["camera_k"])
    return pixels[:, 0]


def write_subject(
    root: Path,
    smpl_file: Path,
    num_video: int = NUM_FRAMES,
    num_masks: int = NUM_FRAMES,
    num_poses: int = NUM_FRAMES + 1,
    unfitted_rows=(),
    empty_masks=(),
    seed: int = 0,
) -> dict:
    """A PeopleSnapshot subject folder; pose rows at ``num_poses - 1`` and ``unfitted_rows`` are all zero,
    as videoavatars leaves the frame it never fits. Returns the ground truth."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True)
    poses = rng.normal(scale=0.15, size=(num_poses, 72))
    poses[:, :3] = [np.pi, 0.0, 0.0] + rng.normal(scale=0.1, size=(num_poses, 3))  # upright in a y-down camera
    trans = np.array([0.05, 0.1, 3.0]) + rng.normal(scale=0.05, size=(num_poses, 3))
    betas = rng.normal(scale=0.5, size=10)
    for row in (num_poses - 1, *unfitted_rows):
        poses[row], trans[row] = 0.0, 0.0
    vertices, joints = smpl_posed(smpl_file, poses, trans, betas)

    masks = np.zeros((num_masks, HEIGHT, WIDTH), dtype=np.uint8)
    for i in range(min(num_masks, num_poses - 1)):
        if i in empty_masks or i in unfitted_rows:
            continue
        u, v = np.round(project(vertices[i][::7])).astype(int).T
        inside = (u >= 0) & (u < WIDTH) & (v >= 0) & (v < HEIGHT)
        masks[i, v[inside], u[inside]] = 1

    write_video(root / f"{root.name}.mp4", num_video)
    with open(root / "camera.pkl", "wb") as handle:
        pickle.dump(CAMERA, handle, protocol=2)
    with h5py.File(root / "masks.hdf5", "w") as handle:
        handle.create_dataset("masks", data=masks)
    with h5py.File(root / "reconstructed_poses.hdf5", "w") as handle:
        handle.create_dataset("pose", data=poses.astype(np.float32))
        handle.create_dataset("trans", data=trans.astype(np.float32))
        handle.create_dataset("betas", data=betas.astype(np.float32))
    with open(root / "consensus.pkl", "wb") as handle:
        pickle.dump({"betas": betas + 0.1, "v_personal": np.zeros((6890, 3))}, handle, protocol=2)
    return dict(poses=poses.astype(np.float32), trans=trans.astype(np.float32), betas=betas.astype(np.float32),
                vertices=vertices, joints=joints, masks=masks)  # fmt: skip


@pytest.fixture(scope="module")
def smpl_file(synthetic_smpl_dir):
    return synthetic_smpl_dir / "smpl" / "SMPL_NEUTRAL.pkl"


@pytest.fixture(scope="module")
def master(tmp_path_factory, smpl_file):
    root = tmp_path_factory.mktemp("people_snapshot") / "subject-a"
    truth = write_subject(root, smpl_file)
    # the poses as stored (float32), posed again so the truth is exactly what the file says
    truth["vertices"], truth["joints"] = smpl_posed(smpl_file, truth["poses"], truth["trans"], truth["betas"])
    return root, truth


@pytest.fixture
def subject(master, tmp_path):
    root = tmp_path / master[0].name
    shutil.copytree(master[0], root)
    return root


def parse(root, body_dir, split="train", **options):
    config = PeopleSnapshotDataParserConfig(data=root, body_model_dir=body_dir, **options)
    return config.setup().get_dataparser_outputs(split)


# ------------------------------------------------------------------------------------------------
# splits


def test_the_anim_nerf_table_per_subject():
    assert split_frames("auto", "train", "male-3-casual", 676) == tuple(range(0, 453, 4))
    assert split_frames("auto", "test", "male-3-casual", 676) == tuple(range(456, 673, 4))
    assert split_frames("auto", "val", "male-3-casual", 676) == (456,)
    assert split_frames("auto", "train", "male-4-casual", 873)[-2:] == (648, 654)
    assert split_frames("auto", "test", "male-4-casual", 873)[:2] == (660, 666)
    assert split_frames("auto", "val", "female-4-casual", 524) == (335,)
    assert split_frames("auto", "test", "female-3-casual", 648)[-1] == 646
    for protocol in ANIM_NERF_PROTOCOL.values():  # no training frame is ever tested
        assert not set(protocol.train.frames()) & (set(protocol.test.frames()) | set(protocol.val.frames()))


def test_table_ranges_meet_the_video_and_overrides_replace_them():
    with pytest.raises(InputError, match="--train-frame-range"):
        split_frames("auto", "train", "male-3-casual", 400)
    assert split_frames("auto", "test", "male-3-casual", 600)[-1] == 596  # test range ends with the video
    given = FrameOverrides(
        train_frame_range=(0, 100), frame_stride=10, test_frame_range=(100, 130), test_frame_stride=15
    )
    assert split_frames("anim_nerf", "train", "male-3-casual", 300, given) == tuple(range(0, 100, 10))
    assert split_frames("anim_nerf", "test", "male-3-casual", 300, given) == (100, 115)
    assert split_frames("anim_nerf", "val", "male-3-casual", 300, given) == (100,)
    with pytest.raises(InputError, match="anim_nerf split preset knows"):
        split_frames("anim_nerf", "train", "my-video", 300)
    with pytest.raises(InputError, match="0 <= BEGIN < END <= 300"):
        split_frames("default", "test", "my-video", 300, FrameOverrides(test_frame_range=(250, 320)))


def test_default_split_for_other_subjects():
    assert split_frames("auto", "train", "my-video", 300) == tuple(range(0, 200, 4))
    assert split_frames("auto", "val", "my-video", 300) == (200,)
    assert split_frames("auto", "test", "my-video", 300) == tuple(range(200, 300, 4))
    assert table_frames("auto", "my-video", 12) == (0, 4, 8)


# ------------------------------------------------------------------------------------------------
# the parser


def test_outputs_counts_frames_and_cache(master, synthetic_smpl_dir):
    root, truth = master
    with pytest.warns(UserWarning, match="using the first 12"):
        train = parse(root, synthetic_smpl_dir)
    assert [p.name for p in train.image_filenames] == ["000000.png", "000004.png"]
    assert train.cameras.shape == (2,) and len(train.mask_filenames) == 2
    body = train.metadata["body_frames"]
    assert body.frame_ids.tolist() == [0, 4, 8] and body.trained.tolist() == [True, True, False]
    assert body.fits_estimated and train.metadata["body_model_name"] == "smpl"
    assert train.cameras.metadata["frame_idx"][:, 0].tolist() == [0, 1]
    assert train.cameras.metadata["camera_idx"][:, 0].tolist() == [0, 0]
    assert train.cameras.times[:, 0].tolist() == [0.0, 0.5]
    assert train.alpha_color is None and train.dataparser_scale == 1.0 and "mask_color" not in train.metadata
    test = parse(root, synthetic_smpl_dir, "test")
    assert [p.name for p in test.image_filenames] == ["000008.png"]
    assert test.cameras.metadata["frame_idx"][:, 0].tolist() == [2] and test.cameras.times[:, 0].tolist() == [1.0]

    # frames decoded in order, masks written as 0/255 single-channel PNGs
    for i in range(NUM_FRAMES):
        image = cv2.imread(str(root / "hfavatar_cache" / "images" / f"{i:06d}.png"))
        assert image.shape == (HEIGHT, WIDTH, 3) and abs(image.mean() - grey_level(i)) < 4
        assert (read_mask(root / "hfavatar_cache" / "masks" / f"{i:06d}.png") == (truth["masks"][i] != 0)).all()
    aabb = train.scene_box.aabb.numpy()
    posed = truth["vertices"][[0, 4, 8]]
    assert np.allclose(aabb[0], posed.min((0, 1)) - 0.2, atol=1e-4)
    assert np.allclose(aabb[1], posed.max((0, 1)) + 0.2, atol=1e-4)


def test_cache_is_reused_while_fresh(subject, synthetic_smpl_dir):
    parse(subject, synthetic_smpl_dir)
    first = subject / "hfavatar_cache" / "images" / "000003.png"
    stamp = first.stat().st_mtime_ns
    parse(subject, synthetic_smpl_dir, "test")
    assert first.stat().st_mtime_ns == stamp
    video = subject / "subject-a.mp4"
    os.utime(video, ns=(video.stat().st_atime_ns, video.stat().st_mtime_ns + 10**9))  # the video changed
    parse(subject, synthetic_smpl_dir)
    assert first.stat().st_mtime_ns != stamp


def test_body_is_smpl_posed_with_the_files_pose_and_trans(master, synthetic_smpl_dir):
    root, truth = master
    out = parse(root, synthetic_smpl_dir, train_frame_range=(0, 12), frame_stride=1, test_frame_range=(10, 12))
    body = out.metadata["body_frames"]
    assert body.frame_ids.tolist() == list(range(NUM_FRAMES))
    assert np.abs(body.given_vertices.numpy() - truth["vertices"][:NUM_FRAMES]).max() < 1e-4
    assert np.allclose(body.global_rotation.numpy(), truth["poses"][:NUM_FRAMES, :3])
    assert (body.poses[:, :3] == 0).all()  # the root rotation moved to Rh, EasyMocap-style
    assert body.body_model.gender == "neutral" and body.shape.shape == (10,)


def test_camera_round_trip_through_nerfstudio(master, synthetic_smpl_dir):
    """A joint, projected by OpenCV with the pkl's camera, lies on the parsed camera's ray through that pixel."""
    root, truth = master
    for downscale in (1, 2):
        out = parse(root, synthetic_smpl_dir, downscale_factor=downscale)
        cameras = out.cameras
        assert cameras.width[0, 0] == WIDTH // downscale and cameras.height[0, 0] == HEIGHT // downscale
        assert np.isclose(cameras.fx[0, 0] * downscale, 60.0) and np.isclose(cameras.cy[0, 0] * downscale, 24.6 + 0.5)
        for image, frame in enumerate((0, 4)):
            joints = truth["joints"][frame]
            pixels = project(joints)
            coords = torch.as_tensor((pixels[:, ::-1] + 0.5) / downscale, dtype=torch.float32)
            rays = cameras.generate_rays(camera_indices=torch.full((24, 1), image), coords=coords)
            offset = joints - rays.origins.numpy()
            distance = np.linalg.norm(np.cross(offset, rays.directions.numpy()), axis=-1)
            depth = np.linalg.norm(offset, axis=-1)
            assert (distance < 2e-3 * depth).all(), distance.max()
            assert (rays.metadata["frame_idx"][:, 0] == image).all()
        centre = out.metadata["body_frames"].lone_training_camera  # where refinement holds depth from
        assert torch.allclose(centre, cameras.camera_to_worlds[0, :, 3], atol=1e-5)
        if downscale == 2:
            assert all("images_2" in str(p) for p in out.image_filenames)
            assert cv2.imread(str(out.mask_filenames[0]), cv2.IMREAD_UNCHANGED).shape == (HEIGHT // 2, WIDTH // 2)


def test_smpl_and_easymocap_conventions_round_trip(smpl_file):
    torch.manual_seed(0)
    poses, transl, root = torch.randn(3, 72) * 0.4, torch.randn(3, 3), torch.randn(3)
    body_poses, Rh, Th = smpl_to_easymocap(poses, transl, root)
    back_poses, back_transl = easymocap_to_smpl(body_poses, Rh, Th, root)
    assert torch.allclose(back_poses, poses, atol=1e-5) and torch.allclose(back_transl, transl, atol=1e-5)


@pytest.mark.parametrize(
    "counts, usable, mentioned",
    [
        (dict(num_video=10), 10, "the video has 10"),
        (dict(num_poses=NUM_FRAMES), NUM_FRAMES - 1, "unfitted all-zero pose row"),
        (dict(num_masks=9, num_poses=9), 8, "masks.hdf5 has 9"),
    ],
)
def test_frame_count_mismatch_uses_the_common_prefix(
    tmp_path, smpl_file, synthetic_smpl_dir, counts, usable, mentioned
):
    root = tmp_path / "subject-b"
    write_subject(root, smpl_file, **counts)
    with pytest.warns(UserWarning, match=mentioned):
        out = parse(root, synthetic_smpl_dir, train_frame_range=(0, usable), frame_stride=1,
                    test_frame_range=(usable - 1, usable))  # fmt: skip
    assert out.metadata["body_frames"].frame_ids.tolist() == list(range(usable))
    with pytest.raises(InputError, match=f"{usable} frames are usable"):
        parse(root, synthetic_smpl_dir, train_frame_range=(0, usable + 1))


def test_gender_follows_the_subject_name(subject, tmp_path, synthetic_smpl_dir):
    renamed = subject.rename(subject.parent / "female-9-test")
    (renamed / "subject-a.mp4").rename(renamed / "female-9-test.mp4")
    body_dir = tmp_path / "bodies"
    write_synthetic_smpl(body_dir, gender="female", seed=1)
    body = parse(renamed, body_dir).metadata["body_frames"]
    assert body.body_model.gender == "female"
    with pytest.raises(InputError, match="SMPL_MALE"):
        parse(renamed, body_dir, gender="male")


def test_consensus_shape_and_the_free_body(subject, synthetic_smpl_dir):
    body = parse(subject, synthetic_smpl_dir, betas_from="consensus").metadata["body_frames"]
    with open(subject / "consensus.pkl", "rb") as handle:
        assert np.allclose(body.shape.numpy(), pickle.load(handle)["betas"], atol=1e-6)
    free = parse(subject, None, body_model="free")
    assert free.metadata["body_model_name"] == "free" and free.metadata["body_frames"].num_frames == 3


# ------------------------------------------------------------------------------------------------
# bad input: one message naming the file and the fix


@pytest.mark.parametrize(
    "name, pattern",
    [
        ("camera.pkl", "camera.pkl does not exist"),
        ("masks.hdf5", "masks.hdf5 does not exist"),
        ("reconstructed_poses.hdf5", "reconstructed_poses.hdf5 does not exist"),
        ("subject-a.mp4", "No video in"),
    ],
)
def test_missing_files(subject, synthetic_smpl_dir, name, pattern):
    (subject / name).unlink()
    with pytest.raises(InputError, match=pattern):
        parse(subject, synthetic_smpl_dir)


def test_camera_pkl_with_wrong_keys_or_content(subject, synthetic_smpl_dir):
    camera = {key: value for key, value in CAMERA.items() if key != "camera_k"}
    with open(subject / "camera.pkl", "wb") as handle:
        pickle.dump(camera, handle, protocol=2)
    with pytest.raises(InputError, match=r"camera.pkl lacks camera_k .*create_camera.py"):
        parse(subject, synthetic_smpl_dir)
    with open(subject / "camera.pkl", "wb") as handle:
        pickle.dump(dict(CAMERA, camera_c=np.zeros(3)), handle, protocol=2)
    with pytest.raises(InputError, match="'camera_c' holds 3 values; expected 2"):
        parse(subject, synthetic_smpl_dir)
    (subject / "camera.pkl").write_bytes(b"not a pickle")
    with pytest.raises(InputError, match="Cannot read .*camera.pkl"):
        parse(subject, synthetic_smpl_dir)


def test_hdf5_with_wrong_datasets_or_sizes(subject, synthetic_smpl_dir):
    with h5py.File(subject / "reconstructed_poses.hdf5", "a") as handle:
        del handle["trans"]
    with pytest.raises(InputError, match=r"reconstructed_poses.hdf5 lacks the dataset 'trans' \(found betas, pose\)"):
        parse(subject, synthetic_smpl_dir)
    (subject / "reconstructed_poses.hdf5").write_bytes(b"garbage")
    with pytest.raises(InputError, match="Cannot read .*reconstructed_poses.hdf5 as HDF5"):
        parse(subject, synthetic_smpl_dir)


def test_mask_and_video_sizes_must_match_the_camera(subject, synthetic_smpl_dir):
    with h5py.File(subject / "masks.hdf5", "w") as handle:
        handle.create_dataset("masks", data=np.ones((NUM_FRAMES, HEIGHT, WIDTH + 2), dtype=np.uint8))
    with pytest.raises(InputError, match="masks.hdf5 are 66x48 but .*camera.pkl describes 64x48"):
        parse(subject, synthetic_smpl_dir)
    with open(subject / "camera.pkl", "wb") as handle:
        pickle.dump(dict(CAMERA, width=WIDTH + 2), handle, protocol=2)
    with pytest.raises(InputError, match="subject-a.mp4 is 64x48 but .*camera.pkl describes 66x48"):
        parse(subject, synthetic_smpl_dir)


def test_empty_masks_and_unfitted_frames_are_named(tmp_path, smpl_file, synthetic_smpl_dir):
    root = tmp_path / "subject-c"
    write_subject(root, smpl_file, empty_masks=(4,), unfitted_rows=(8,))
    with pytest.raises(InputError, match=r"frame\(s\) 8 of the split"):
        parse(root, synthetic_smpl_dir)
    with pytest.raises(InputError, match=r"masks of frame\(s\) 4 .* are empty"):
        parse(root, synthetic_smpl_dir, test_frame_range=(9, 12))
    out = parse(root, synthetic_smpl_dir, test_frame_range=(9, 12), check_masks=False)
    assert len(out.image_filenames) == 2


def test_undecodable_video(subject, synthetic_smpl_dir):
    (subject / "subject-a.mp4").write_bytes(b"\x00" * 64)
    with pytest.raises(InputError, match="Cannot open the video .*subject-a.mp4"):
        parse(subject, synthetic_smpl_dir)


def test_registered_with_nerfstudio():
    pyproject = Path(__file__).parents[1] / "pyproject.toml"
    if "people-snapshot" not in pyproject.read_text():
        pytest.skip("the people-snapshot entry point is not declared in pyproject.toml yet")
    code = (
        "from nerfstudio.configs.dataparser_configs import all_dataparsers; "
        "print('people-snapshot' in all_dataparsers)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.stdout.strip().endswith("True"), result.stderr[-2000:]
