"""Geometry of the body prior: the tabulated body SDF (canonical space)."""

from hfavatar_ns.geometry.prior_sdf import SDFGrid, build_sdf_grid, query_sdf_grid, signed_distance_to_mesh

__all__ = ["SDFGrid", "build_sdf_grid", "query_sdf_grid", "signed_distance_to_mesh"]
