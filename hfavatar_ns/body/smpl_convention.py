"""SMPL's ``global_orient`` / ``transl`` <-> EasyMocap's ``Rh`` / ``Th``, the convention hfavatar poses bodies in.

Two ways of placing the same posed body in the world:

* **SMPL** (smplx, videoavatars and so PeopleSnapshot, InstantAvatar): the root rotation ``pose[:3]``
  turns the body about its root joint ``J0`` (the pelvis of the *shaped* rest body), then ``transl``
  is added: ``x = R(pose[:3]) (X0 - J0) + J0 + transl``.
* **EasyMocap** (ZJU-MoCap, :meth:`hfavatar_ns.body.base.BodyModel.pose`): ``Rh`` turns the body about
  the model origin, then ``Th`` is added: ``x = R(Rh) X + Th``; the fits keep ``pose[:3]`` zero.

``X0`` is the body posed with a zero root rotation in both. So the bodies agree when ``Rh = pose[:3]``
and ``Th = transl + J0 - R(Rh) J0`` (shared/reference/data-formats.md §1 gives the reverse direction).
``J0`` moves with the shape coefficients, which is why every function here takes the root joint of
the shaped body rather than a constant.
"""

from __future__ import annotations

from typing import Tuple

import roma
from jaxtyping import Float
from torch import Tensor

from hfavatar_ns.body.skinning import axis_angle_to_matrix


def smpl_to_easymocap(
    poses: Float[Tensor, "F 72"],
    transl: Float[Tensor, "F 3"],
    root_joint: Float[Tensor, "*F 3"],
) -> Tuple[Float[Tensor, "F 72"], Float[Tensor, "F 3"], Float[Tensor, "F 3"]]:
    """SMPL parameters as EasyMocap ones describing the same posed body.

    Args:
        poses: SMPL pose vectors; ``poses[:, :3]`` is the global orientation (about the root joint).
        transl: SMPL translations (metres).
        root_joint: the shaped rest body's root joint ``J0`` ([3], or one per frame).

    Returns:
        ``(poses, Rh, Th)``: the poses with a zero root rotation, ``Rh = poses[:, :3]`` and
        ``Th = transl + J0 - R(Rh) J0``.
    """
    poses = poses.reshape(poses.shape[0], -1)
    global_orient = poses[:, :3]
    rotation = axis_angle_to_matrix(global_orient)
    root = root_joint.to(transl).expand_as(transl)
    Th = transl + root - (rotation @ root[..., None])[..., 0]
    body_poses = poses.clone()
    body_poses[:, :3] = 0.0
    return body_poses, global_orient.clone(), Th


def easymocap_to_smpl(
    poses: Float[Tensor, "F 72"],
    Rh: Float[Tensor, "F 3"],
    Th: Float[Tensor, "F 3"],
    root_joint: Float[Tensor, "*F 3"],
) -> Tuple[Float[Tensor, "F 72"], Float[Tensor, "F 3"]]:
    """EasyMocap parameters as SMPL ones (``global_orient`` folded into ``poses[:, :3]``, and ``transl``).

    ``poses[:, :3]`` may be non-zero (a refined fit): ``R(Rh)`` is composed with it, and the
    translation becomes ``transl = Th + R(Rh) J0 - J0``.
    """
    poses = poses.reshape(poses.shape[0], -1)
    outer = axis_angle_to_matrix(Rh)
    root = root_joint.to(Th).expand_as(Th)
    combined = outer @ axis_angle_to_matrix(poses[:, :3])
    smpl_poses = poses.clone()
    smpl_poses[:, :3] = roma.rotmat_to_rotvec(combined)
    transl = Th + (outer @ root[..., None])[..., 0] - root
    return smpl_poses, transl
