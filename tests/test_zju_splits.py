import pytest

from dataparsers.zju_mocap.splits import (
    NEURALBODY_SUBJECTS,
    SplitOverrides,
    custom_split,
    humannerf_split,
    neuralbody_split,
    resolve_split_name,
    select_split,
    subject_id,
    table_frames,
)
from hfavatar_ns.errors import InputError


def test_subject_id_from_folder():
    assert subject_id("/data/zju_mocap/CoreView_377") == "377"
    assert subject_id("CoreView_313/") == "313"
    assert subject_id("my_capture") is None


def test_neuralbody_377():
    train = neuralbody_split("train", "377", 23, 617)
    assert train.cameras == (0, 6, 12, 18) and train.frames == tuple(range(300))
    view = neuralbody_split("novel_view", "377", 23, 617)
    assert view.cameras == tuple(c for c in range(23) if c not in (0, 6, 12, 18)) and len(view.cameras) == 19
    assert view.frames == tuple(range(0, 300, 30))
    pose = neuralbody_split("novel_pose", "377", 23, 617)
    assert pose.cameras == view.cameras and pose.frames == tuple(range(300, 617, 30))


def test_neuralbody_313_small_capture_clips_the_novel_pose_range():
    train = neuralbody_split("train", "313", 21, 100)
    assert train.cameras == (0, 6, 12, 18) and train.frames == tuple(range(60))
    view = neuralbody_split("novel_view", "313", 21, 100)
    assert len(view.cameras) == 17 and 19 in view.cameras and 20 in view.cameras and view.frames == (0, 30)
    assert neuralbody_split("novel_pose", "313", 21, 100).frames == (60, 90)


def test_neuralbody_390_trains_late_frames_and_tests_early_ones():
    assert neuralbody_split("train", "390", 23, 1171).frames == tuple(range(700, 1000))
    assert neuralbody_split("novel_pose", "390", 23, 1171).frames == tuple(range(0, 700, 30))


def test_val_and_test_follow_test_split():
    assert resolve_split_name("val") == "novel_view" and resolve_split_name("test", "novel_pose") == "novel_pose"
    assert neuralbody_split("test", "377", 23, 617, test_split="novel_pose").frames[0] == 300
    assert neuralbody_split("val", "377", 23, 617).frames[0] == 0
    with pytest.raises(InputError, match="Unknown split"):
        resolve_split_name("training")


def test_unknown_subject_lists_known_ones_and_accepts_user_ranges():
    with pytest.raises(InputError) as error:
        select_split("neuralbody", "train", "/data/my_dance", 23, 100)
    assert all(f"CoreView_{s}" in str(error.value) for s in NEURALBODY_SUBJECTS) and "--train-frame-range" in str(
        error.value
    )
    overrides = SplitOverrides(train_frame_range=(0, 40), test_frame_range=(40, 100))
    assert select_split("neuralbody", "train", "/data/my_dance", 23, 100, overrides).frames == tuple(range(40))
    assert select_split("neuralbody", "novel_pose", "/data/my_dance", 23, 100, overrides).frames == (40, 70)


def test_table_training_frames_beyond_the_capture_are_an_error():
    with pytest.raises(InputError, match="only 100 frames"):
        neuralbody_split("train", "377", 23, 100)


def test_too_few_cameras_for_the_preset():
    with pytest.raises(InputError, match="camera index 6"):
        neuralbody_split("train", "377", 4, 617)


def test_humannerf_monocular():
    train = humannerf_split("train", "377", 23, 617)
    assert train.cameras == (0,) and train.frames == tuple(range(570))
    assert humannerf_split("novel_view", "377", 23, 617).cameras == tuple(range(1, 23))
    assert humannerf_split("novel_pose", "377", 23, 617).frames == (570, 600)
    assert humannerf_split("train", "392", 23, 556).frames == tuple(range(556))
    with pytest.raises(InputError, match="novel_pose split has no frames"):
        humannerf_split("novel_pose", "392", 23, 556)


def test_custom_lists_and_strides():
    overrides = SplitOverrides(
        train_cameras=(1, 3), train_frames=tuple(range(10)), test_frames=(12, 15), frame_stride=2
    )
    assert custom_split("train", 5, 20, overrides) == custom_split("train", 5, 20, overrides)
    train = custom_split("train", 5, 20, overrides)
    assert train.cameras == (1, 3) and train.frames == (0, 2, 4, 6, 8)
    pose = custom_split("novel_pose", 5, 20, overrides)
    assert pose.cameras == (0, 2, 4) and pose.frames == (12, 15)
    view = custom_split(
        "novel_view", 5, 20, SplitOverrides(train_cameras=(0,), train_frame_range=(0, 10), test_frame_stride=4)
    )
    assert view.frames == (0, 4, 8)
    with pytest.raises(InputError, match="--train-cameras"):
        custom_split("train", 5, 20, SplitOverrides())
    with pytest.raises(InputError, match="out of range"):
        custom_split("train", 5, 20, SplitOverrides(train_cameras=(0,), train_frames=(3, 25)))


def test_table_frames_is_the_union_of_every_split():
    frames = table_frames("neuralbody", "CoreView_313", 21, 100)
    assert frames == tuple(range(60)) + (60, 90)
