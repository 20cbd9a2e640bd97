import cv2
import numpy as np
import pytest
from zju_fixture import ring_cameras

from dataparsers.zju_mocap.camera_conversion import (
    nerfstudio_c2w_to_opencv,
    nerfstudio_distortion_to_zju,
    nerfstudio_to_opencv_intrinsics,
    opencv_to_nerfstudio_c2w,
    opencv_to_nerfstudio_intrinsics,
    project_points,
    zju_distortion_to_nerfstudio,
)
from hfavatar_ns.body.body_frames import frame_times


@pytest.fixture
def cams():
    return ring_cameras(5, (400, 300), seed=3)


def test_project_points_matches_cv2_with_distortion(cams):
    rng = np.random.default_rng(0)
    points = rng.uniform([-0.5, -0.5, 0.0], [0.5, 0.5, 1.8], size=(500, 3))
    pixels, depth = project_points(cams["K"], cams["R"], cams["T"], cams["D"], points)
    assert pixels.shape == (5, 500, 2) and (depth > 0).all()
    for c in range(5):
        expected, _ = cv2.projectPoints(
            points, cv2.Rodrigues(cams["R"][c])[0], cams["T"][c], cams["K"][c], cams["D"][c]
        )
        assert np.abs(pixels[c] - expected[:, 0]).max() < 0.5
        assert np.abs(pixels[c] - expected[:, 0]).max() < 1e-6  # in fact exact
    one, _ = project_points(cams["K"][0], cams["R"][0], cams["T"][0], cams["D"][0], points)
    assert one.shape == (500, 2) and np.allclose(one, pixels[0])


def test_c2w_is_opengl_and_round_trips(cams):
    c2w = opencv_to_nerfstudio_c2w(cams["R"], cams["T"])
    assert c2w.shape == (5, 3, 4)
    centre = -np.einsum("nji,nj->ni", cams["R"], cams["T"])
    assert np.allclose(c2w[:, :, 3], centre)
    # nerfstudio cameras look along -z: the camera's -z axis points at the body (near the origin).
    to_body = np.array([0.0, 0.0, 0.8]) - centre
    assert (np.einsum("ni,ni->n", -c2w[:, :, 2], to_body) > 0.9 * np.linalg.norm(to_body, axis=1)).all()
    # and y up: the camera's +y has a positive world-z component (world is z-up in the fixture)
    assert (c2w[:, 2, 1] > 0).all()
    R, T = nerfstudio_c2w_to_opencv(c2w)
    assert np.allclose(R, cams["R"]) and np.allclose(T, cams["T"])


def test_distortion_order_round_trips(cams):
    ns = zju_distortion_to_nerfstudio(cams["D"])
    k1, k2, p1, p2, k3 = cams["D"].T
    assert np.allclose(ns, np.stack([k1, k2, k3, np.zeros(5), p1, p2], -1))
    assert np.allclose(nerfstudio_distortion_to_zju(ns), cams["D"])
    with pytest.raises(ValueError):
        nerfstudio_distortion_to_zju(np.array([[0, 0, 0, 0.1, 0, 0]]))


def test_intrinsics_half_pixel_shift_and_scaling(cams):
    ns = opencv_to_nerfstudio_intrinsics(cams["K"])
    assert np.allclose(ns[:, 2], cams["K"][:, 0, 2] + 0.5)
    assert np.allclose(nerfstudio_to_opencv_intrinsics(*ns.T), cams["K"])
    half = opencv_to_nerfstudio_intrinsics(cams["K"], 0.5, 0.5)
    assert np.allclose(half, ns * 0.5)


def test_frame_times():
    assert np.allclose(frame_times([10, 20, 40]), [0, 1 / 3, 1])
    assert np.allclose(frame_times([7]), [0])
