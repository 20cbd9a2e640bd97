"""Each kind of bad ZJU-MoCap input gives one InputError that names the file and says what to do."""

import shutil

import numpy as np
import pytest
from zju_fixture import write_independent_zju_capture

from dataparsers.zju_mocap.capture import read_capture
from dataparsers.zju_mocap.zju_dataparser import ZJUMocapDataParserConfig
from hfavatar_ns.errors import InputError


@pytest.fixture(scope="module")
def master(tmp_path_factory, synthetic_smpl_dir):
    root = tmp_path_factory.mktemp("zju_master") / "CoreView_377"
    write_independent_zju_capture(
        root, synthetic_smpl_dir / "smpl" / "SMPL_NEUTRAL.pkl", "B", num_cameras=2, num_frames=3
    )
    return root


@pytest.fixture
def capture(master, tmp_path):
    root = tmp_path / "CoreView_377"
    shutil.copytree(master, root)
    return root


def parse(root, body_dir, split="train", **overrides):
    options = dict(split_preset="custom", train_cameras=(0, 1), train_frames=(0, 1, 2))
    options.update(overrides)
    return ZJUMocapDataParserConfig(data=root, body_model_dir=body_dir, **options).setup().get_dataparser_outputs(split)


def annots(root):
    return np.load(root / "annots.npy", allow_pickle=True).item()


def test_missing_annots(capture, synthetic_smpl_dir):
    (capture / "annots.npy").unlink()
    with pytest.raises(InputError, match="annots.npy does not exist"):
        parse(capture, synthetic_smpl_dir)


def test_unreadable_annots(capture, synthetic_smpl_dir):
    (capture / "annots.npy").write_bytes(b"garbage")
    with pytest.raises(InputError) as error:
        parse(capture, synthetic_smpl_dir)
    assert "Cannot read" in str(error.value) and str(capture / "annots.npy") in str(error.value)


@pytest.mark.parametrize("drop", ["cams", "ims"])
def test_annots_without_cams_or_ims(capture, synthetic_smpl_dir, drop):
    data = annots(capture)
    del data[drop]
    np.save(capture / "annots.npy", data)
    with pytest.raises(InputError, match="keys 'cams' and 'ims'"):
        parse(capture, synthetic_smpl_dir)


def test_annots_with_wrong_camera_shapes(capture, synthetic_smpl_dir):
    data = annots(capture)
    data["cams"]["K"][1] = np.eye(2)
    np.save(capture / "annots.npy", data)
    with pytest.raises(InputError, match=r"annots\['cams'\]\['K'\]\[1\] has shape \(2, 2\)"):
        parse(capture, synthetic_smpl_dir)


def test_annots_with_wrong_image_count(capture, synthetic_smpl_dir):
    data = annots(capture)
    data["ims"][2]["ims"] = data["ims"][2]["ims"][:1]
    np.save(capture / "annots.npy", data)
    with pytest.raises(InputError, match=r"annots\['ims'\]\[2\] has 1 images; expected .* 2 image paths"):
        parse(capture, synthetic_smpl_dir)


def test_missing_image(capture, synthetic_smpl_dir):
    (capture / "Camera_B2" / "000001.jpg").unlink()
    with pytest.raises(InputError) as error:
        parse(capture, synthetic_smpl_dir)
    assert "1 image file(s) are missing" in str(error.value) and "Camera_B2/000001.jpg" in str(error.value)


def test_missing_mask_lists_the_folders_looked_in(capture, synthetic_smpl_dir):
    (capture / "mask_cihp" / "Camera_B1" / "000002.png").unlink()
    with pytest.raises(InputError) as error:
        parse(capture, synthetic_smpl_dir)
    message = str(error.value)
    assert "mask_cihp/Camera_B1/000002.png" in message and str(capture / "mask") + "/" in message


def test_no_masks_at_all(capture, synthetic_smpl_dir):
    shutil.rmtree(capture / "mask_cihp")
    with pytest.raises(InputError) as error:
        parse(capture, synthetic_smpl_dir)
    assert "mask_cihp/Camera_B1/000000.png" in str(error.value) and "mask/Camera_B1/000000.png" in str(error.value)


def test_frame_count_mismatch_between_annots_and_params(capture, synthetic_smpl_dir):
    (capture / "new_params" / "2.npy").unlink()
    with pytest.raises(InputError) as error:
        parse(capture, synthetic_smpl_dir)
    message = str(error.value)
    assert (
        "lists 3 frames" in message and "holds 2 parameter files" in message and str(capture / "new_params") in message
    )


def test_missing_params_folder(capture, synthetic_smpl_dir):
    shutil.rmtree(capture / "new_params")
    with pytest.raises(InputError, match="new_params/, params/"):
        parse(capture, synthetic_smpl_dir)


def test_nan_params(capture, synthetic_smpl_dir):
    path = capture / "new_params" / "1.npy"
    record = np.load(path, allow_pickle=True).item()
    record["Th"][0, 1] = np.nan
    np.save(path, record)
    with pytest.raises(InputError) as error:
        parse(capture, synthetic_smpl_dir)
    assert str(path) in str(error.value) and "'Th'" in str(error.value) and "NaN" in str(error.value)


def test_wrong_shaped_params(capture, synthetic_smpl_dir):
    path = capture / "new_params" / "0.npy"
    record = np.load(path, allow_pickle=True).item()
    record["poses"] = record["poses"][:, :69]
    np.save(path, record)
    with pytest.raises(InputError) as error:
        parse(capture, synthetic_smpl_dir)
    assert str(path) in str(error.value) and "'poses' has shape (1, 69)" in str(error.value)


def test_params_missing_a_key(capture, synthetic_smpl_dir):
    path = capture / "new_params" / "0.npy"
    record = np.load(path, allow_pickle=True).item()
    del record["shapes"]
    np.save(path, record)
    with pytest.raises(InputError, match="lacks the key 'shapes'"):
        parse(capture, synthetic_smpl_dir)


def test_empty_mask_in_the_split_is_named(capture, synthetic_smpl_dir):
    import cv2

    path = capture / "mask_cihp" / "Camera_B2" / "000001.png"
    cv2.imwrite(str(path), np.zeros((160, 120), np.uint8))
    with pytest.raises(InputError) as error:
        parse(capture, synthetic_smpl_dir)
    assert str(path) in str(error.value) and "empty" in str(error.value)
    # outside the selected split it does not matter
    parse(capture, synthetic_smpl_dir, train_frames=(0, 2))


def test_mask_of_the_wrong_size(capture, synthetic_smpl_dir):
    import cv2

    path = capture / "mask_cihp" / "Camera_B1" / "000000.png"
    cv2.imwrite(str(path), np.ones((80, 60), np.uint8))
    with pytest.raises(InputError, match="60x80 but its image"):
        parse(capture, synthetic_smpl_dir)


def test_unknown_camera_lists_the_cameras(capture, synthetic_smpl_dir):
    with pytest.raises(InputError) as error:
        parse(capture, synthetic_smpl_dir, train_cameras=(0, 5))
    assert "Unknown camera index 5" in str(error.value) and "0=Camera_B1, 1=Camera_B2" in str(error.value)
    with pytest.raises(InputError, match="0=Camera_B1, 1=Camera_B2"):
        read_capture(capture, camera_indices=[7])


def test_frames_out_of_range(capture, synthetic_smpl_dir):
    with pytest.raises(InputError, match="frame 3 is out of range: the capture has 3 frames"):
        parse(capture, synthetic_smpl_dir, train_frames=(0, 3))
    with pytest.raises(InputError, match=r"annots.npy lists 3 frames \(ids 0..2\)"):
        read_capture(capture, frame_indices=[4])


def test_unknown_subject_for_the_neuralbody_preset(capture, synthetic_smpl_dir, tmp_path):
    renamed = capture.rename(tmp_path / "dance")
    with pytest.raises(InputError, match="CoreView_377, CoreView_386"):
        parse(renamed, synthetic_smpl_dir, split_preset="neuralbody", train_cameras=None, train_frames=None)


def test_missing_capture_folder(tmp_path, synthetic_smpl_dir):
    with pytest.raises(InputError, match="annots.npy does not exist"):
        parse(tmp_path / "nowhere", synthetic_smpl_dir)
