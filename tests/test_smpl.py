import numpy as np
import pytest
import torch

from hfavatar_ns.body.factory import make_body_model
from hfavatar_ns.body.smpl import SMPLBodyModel
from hfavatar_ns.errors import InputError
from smpl_fixture import write_chumpy_smpl, write_synthetic_smpl


def test_synthetic_smpl_file_is_structurally_smpl(synthetic_smpl_dir):
    body = SMPLBodyModel(synthetic_smpl_dir)
    assert body.v_template.shape == (6890, 3)
    assert body.faces.shape == (13776, 3)
    assert body.canonical().joints.shape == (24, 3)


@pytest.mark.parametrize("layout", ["smplx", "flat", "arah"])
def test_accepts_the_common_folder_layouts(tmp_path, layout):
    write_synthetic_smpl(tmp_path, gender="female", layout=layout)
    body = make_body_model("smpl", tmp_path, gender="female")
    assert body.canonical().vertices.shape == (6890, 3)


def test_matches_smplx_with_pose_blend_shapes_and_rh_th(synthetic_smpl_dir):
    import smplx

    torch.manual_seed(0)
    poses = torch.randn(2, 72) * 0.3
    shapes = torch.randn(2, 10)
    rh, th = torch.randn(2, 3) * 0.5, torch.randn(2, 3)
    ours = SMPLBodyModel(synthetic_smpl_dir).pose(poses, shapes, rh, th)

    reference = smplx.SMPL(str(synthetic_smpl_dir / "smpl" / "SMPL_NEUTRAL.pkl"), num_betas=10)
    out = reference(betas=shapes, global_orient=poses[:, :3], body_pose=poses[:, 3:], transl=torch.zeros(2, 3))
    rotation = smplx.lbs.batch_rodrigues(rh)
    expected = out.vertices @ rotation.transpose(1, 2) + th[:, None]
    assert (ours.vertices - expected).abs().max() < 1e-5
    expected_joints = out.joints[:, :24] @ rotation.transpose(1, 2) + th[:, None]
    assert (ours.joints - expected_joints).abs().max() < 1e-5


def test_missing_dir_says_where_to_get_smpl_and_offers_the_free_model(tmp_path):
    with pytest.raises(InputError) as error:
        make_body_model("smpl", tmp_path / "nowhere", gender="male")
    message = str(error.value)
    assert "SMPL_MALE.pkl" in message and "smpl.is.tue.mpg.de" in message and "--body-model free" in message


def test_no_dir_given(tmp_path):
    with pytest.raises(InputError, match="--body-model-dir"):
        make_body_model("smpl", None)


def test_chumpy_file_says_how_to_convert(tmp_path):
    path = write_chumpy_smpl(tmp_path)
    with pytest.raises(InputError) as error:
        make_body_model("smpl", tmp_path)
    assert str(path) in str(error.value) and "clean_ch.py" in str(error.value)


def test_unknown_gender_and_kind(tmp_path):
    with pytest.raises(InputError, match="gender"):
        make_body_model("smpl", tmp_path, gender="robot")
    with pytest.raises(InputError, match="free, smpl"):
        make_body_model("star", tmp_path)


def test_not_a_pickle(tmp_path):
    path = tmp_path / "smpl" / "SMPL_NEUTRAL.pkl"
    path.parent.mkdir(parents=True)
    np.save(path.with_suffix(".npy"), np.zeros(3))
    path.write_bytes(b"not a pickle")
    with pytest.raises(InputError, match="Cannot read"):
        make_body_model("smpl", tmp_path)
