"""Runs mediapipe's pose landmarker (with its person segmentation) over a list of images.

Executed as a script by the interpreter of the separate mediapipe environment (see
:mod:`hfavatar_ns.video.mediapipe_env`): it imports only numpy, OpenCV and mediapipe, never hfavatar.

Usage: ``python mediapipe_worker.py JOB.json``; the job names the images, the output ``.npz`` and whether
the images are consecutive video frames (tracking and temporal smoothing on) or unrelated photographs.
Prints ``progress <done> <total>`` lines for the caller's progress bar.
"""

import json
import sys

import numpy as np


def main() -> None:
    import cv2
    import mediapipe as mp

    job = json.loads(open(sys.argv[1]).read())
    images = job["images"]
    video = bool(job.get("video", True))
    pose = mp.solutions.pose.Pose(
        static_image_mode=not video,
        model_complexity=1,  # the only complexity whose model ships inside the 0.10.21 wheel
        smooth_landmarks=video,
        enable_segmentation=True,
        smooth_segmentation=video,
        min_detection_confidence=float(job.get("min_detection_confidence", 0.5)),
        min_tracking_confidence=float(job.get("min_tracking_confidence", 0.5)),
    )
    count = len(images)
    found = np.zeros(count, bool)
    landmarks = np.zeros((count, 33, 3), np.float32)
    visibility = np.zeros((count, 33), np.float32)
    world = np.zeros((count, 33, 3), np.float32)
    segmentation = None
    for i, path in enumerate(images):
        image = cv2.imread(path, cv2.IMREAD_COLOR)
        if image is None:
            raise SystemExit(f"cannot read {path}")
        height, width = image.shape[:2]
        if segmentation is None:
            segmentation = np.zeros((count, height, width), np.uint8)
        result = pose.process(np.ascontiguousarray(image[..., ::-1]))
        if result.pose_landmarks is not None:
            found[i] = True
            points = result.pose_landmarks.landmark
            landmarks[i] = [(p.x * width, p.y * height, p.z * width) for p in points]
            visibility[i] = [p.visibility for p in points]
            world[i] = [(p.x, p.y, p.z) for p in result.pose_world_landmarks.landmark]
        if result.segmentation_mask is not None:
            segmentation[i] = np.clip(np.round(result.segmentation_mask * 255), 0, 255).astype(np.uint8)
        print(f"progress {i + 1} {count}", flush=True)
    pose.close()
    np.savez_compressed(
        job["output"], found=found, landmarks=landmarks, visibility=visibility, world=world, segmentation=segmentation
    )


if __name__ == "__main__":
    main()
