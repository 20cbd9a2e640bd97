"""Metrics for avatars: meshes against ground truth, images against held-out views."""
