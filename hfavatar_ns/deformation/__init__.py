"""Deformation between observation space (a captured frame) and canonical space (the rest body).

Modules, one idea each:

* :mod:`~hfavatar_ns.deformation.weight_grid`: skinning weights of arbitrary points from the body's
  vertices, precomputed on voxel grids (per frame in observation space, once in canonical space).
* :mod:`~hfavatar_ns.deformation.skinning_field`: the learned canonical skinning-weight field.
* :mod:`~hfavatar_ns.deformation.non_rigid`: the pose-conditioned non-rigid offset.
* :mod:`~hfavatar_ns.deformation.backward`: the iterative backward deformation that ties them together.

Kept import-light: import the submodules you need.
"""
