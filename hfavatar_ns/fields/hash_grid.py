"""nerfstudio's multi-resolution hash grid with a leaner torch path.

Same parameters, checkpoint keys and values as ``nerfstudio.field_components.encodings.HashEncoding``
(tiny-cuda-nn is still used when it is installed). Its torch path hashes and gathers the eight
corners of a cell one at a time and, at each of those eight hashes, copies its constants (the hash
primes, the level offsets) from host memory to the device, which on a GPU blocks the host until the
device is idle. Here the constants live in buffers on the device, all corners of all levels are
hashed and gathered in one op each, and the features are interpolated one axis at a time. The torch
path is the one every run takes without tiny-cuda-nn (every CPU run, and GPU runs where tiny-cuda-nn
is not installed), so both matter: fewer ops and no host waits on a GPU, less arithmetic on a CPU.
"""

from __future__ import annotations

import torch
from jaxtyping import Float
from torch import Tensor

from nerfstudio.field_components.encodings import HashEncoding

# The spatial hash of Instant-NGP (Müller et al. 2022): coordinates times these primes, xor-ed.
HASH_PRIMES = (1, 2654435761, 805459861)


class DeviceHashEncoding(HashEncoding):
    """``HashEncoding`` whose torch path runs in a few ops with its constants on the device."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.register_buffer("level_scales", self.scalings.reshape(-1, 1).float(), persistent=False)
        self.register_buffer("level_offsets", torch.as_tensor(self.hash_offset).long().reshape(-1, 1), persistent=False)
        self.register_buffer("hash_primes", torch.tensor(HASH_PRIMES, dtype=torch.long), persistent=False)

    def pytorch_fwd(self, in_tensor: Float[Tensor, "*bs 3"]) -> Float[Tensor, "*bs output_dim"]:
        scaled = in_tensor[..., None, :] * self.level_scales.to(in_tensor.dtype)  # [..., L, 3]
        lower, upper = torch.floor(scaled), torch.ceil(scaled)
        offset = scaled - lower
        # Per axis, the hash terms of the two candidate nodes ([..., L, 3, 2]); the eight corners are
        # their combinations, made by broadcasting x, y and z against each other into
        # [..., L, 2, 2, 2]. On a node (ceil == floor) both candidates are that node, as in
        # nerfstudio's version.
        terms = torch.stack([lower, upper], dim=-1).long() * self.hash_primes[:, None]
        hashed = torch.bitwise_xor(
            torch.bitwise_xor(terms[..., 0, :, None, None], terms[..., 1, None, :, None]), terms[..., 2, None, None, :]
        )
        index = torch.bitwise_and(hashed, self.hash_table_size - 1) + self.level_offsets[..., None, None]  # size: 2^k
        corners = self.hash_table[index]  # [..., L, 2, 2, 2, F]
        # Interpolate one axis at a time (z, then y, then x): 7 lerps of features rather than
        # weighting all 8 corners, which on a CPU costs less forward and backward.
        along_z = torch.lerp(corners[..., 0, :], corners[..., 1, :], offset[..., 2, None, None, None])
        along_y = torch.lerp(along_z[..., 0, :], along_z[..., 1, :], offset[..., 1, None, None])  # [..., L, 2, F]
        features = torch.lerp(along_y[..., 0, :], along_y[..., 1, :], offset[..., 0, None])  # [..., L, F]
        return features.flatten(start_dim=-2)
