"""The canonical avatar field: SDF = body-prior SDF + hash-grid residual, and a colour head.

The body prior carries the coarse shape, so the hash grid spends its capacity on what the body
model lacks (clothing, wrinkles, hair). The residual's last layer starts at zero: before any
training the zero level set is exactly the canonical body.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, Literal, NamedTuple, Optional, Tuple, Type

import torch
from jaxtyping import Float
from torch import Tensor, nn

from nerfstudio.configs.base_config import InstantiateConfig
from nerfstudio.field_components.encodings import SHEncoding

from hfavatar_ns.fields.hash_grid import DeviceHashEncoding
from hfavatar_ns.fields.shading import DirectionalLightShading, SphericalHarmonicsShading


@dataclass
class AvatarFieldConfig(InstantiateConfig):
    """Canonical SDF residual (hash grid + MLP) and colour head."""

    _target: Type = field(default_factory=lambda: AvatarField)
    implementation: Literal["tcnn", "torch"] = "tcnn"
    """Hash-grid implementation: tcnn (falls back to torch when tiny-cuda-nn is absent) or torch."""
    num_levels: int = 16
    features_per_level: int = 2
    log2_hashmap_size: int = 19
    base_resolution: int = 16
    max_resolution: int = 2048
    """Finest hash-grid resolution over the canonical box (2048 over ~2 m: ~1 mm cells)."""
    hidden_dim: int = 64
    num_layers: int = 2
    geo_feature_dim: int = 15
    color_hidden_dim: int = 64
    color_num_layers: int = 2
    pose_feature_dim: int = 8
    """Width of the pose conditioning of the colour head (a linear map of the 69-d body pose)."""
    color_grid_features: bool = False
    """Also feed the hash grid's own features to the colour head, not only the geometry MLP's (which also
    have to keep the SDF smooth); thin colour stripes need it. Both presets turn it on."""
    color_grid: Literal["geometry", "own"] = "geometry"
    """Which hash grid ``color_grid_features`` reads. geometry: the SDF residual's, whose fine levels then serve
    two masters (texture wants detail, the surface wants smoothness). own: a second grid for colour alone,
    up to ``color_grid_max_resolution``, so texture finer than the surface's cells has somewhere to go."""
    color_grid_max_resolution: int = 1024
    """Finest resolution of the colour's own grid (``color_grid="own"``); its other sizes are the SDF grid's."""
    sh_levels: int = 2
    """Spherical-harmonics levels of the view direction fed to the colour head (0: no view dependence)."""
    color_normals: Literal["auto", "observation", "canonical"] = "auto"
    """Which normal the colour head sees. observation: the posed surface's (shading under fixed lights);
    canonical: the canonical surface's. From one camera only surfaces facing it are seen, so observation
    normals pointing elsewhere never occur in training, and a novel view asks the head to extrapolate.
    auto: canonical when every training image comes from one camera, observation otherwise."""
    shading: Literal["auto", "none", "spherical_harmonics", "directional"] = "auto"
    """How lighting reaches the colour. none: the colour head models it, through the normal it sees.
    spherical_harmonics: the head gives albedo, times one irradiance over the observation normal shared by
    every frame (distant light on a diffuse surface is near exactly a 9-term spherical-harmonics function).
    From one camera the head sees canonical normals (see ``color_normals``), so a person turning under fixed
    lights shows each canonical point brighter in some frames than others, and the head can only average.
    directional: as spherical_harmonics, but the irradiance is an ambient light plus one distant light. One
    camera sees only the normals facing it; nine terms fitted to them are free on the other side, one light
    reaches it as a distant light does (the side it does not face gets the ambient alone).
    auto: directional when every training image comes from one camera, none otherwise. A checkpoint saved with
    spherical_harmonics under auto loads with its own shading."""
    shading_sh_levels: int = 3
    """Spherical-harmonics levels of the irradiance (3: the 9 terms up to degree 2)."""
    residual_scale: float = 0.25
    """The residual SDF is tanh-bounded to +-residual_scale metres: clothing and detail, not a new body
    (a flared skirt reaches ~17 cm beyond the body)."""
    coarse_to_fine_levels: int = 0
    """Hash levels active at the start (0: all from the start). The rest come online one by one over
    ``coarse_to_fine_steps``, so the coarse levels settle the shape before the fine ones can fit noise."""
    coarse_to_fine_steps: int = 0
    """Steps over which the remaining hash levels are switched on (linearly, each faded in)."""
    init_inv_s: float = 64.0
    """Initial NeuS sharpness (inverse standard deviation of the logistic density): the body prior is
    already a good surface, so start sharp (std ~1.6 cm) rather than from NeuS's blurry sphere."""


class FieldGeometry(NamedTuple):
    """What the field gives at canonical points for rendering."""

    sdf: Float[Tensor, "N 1"]
    features: Float[Tensor, "N C"]
    gradient: Float[Tensor, "N 3"]
    """d sdf / d points."""
    prior_sdf: Float[Tensor, "N 1"]
    """The body prior's share of ``sdf`` (``sdf - prior_sdf`` is the learned residual)."""


def coarse_to_fine_level_weights(num_levels: int, initial_levels: int, ramp_steps: int, step: int) -> Tensor:
    """Weight in [0, 1] of each hash level at ``step``: the first ``initial_levels`` are on, the others
    fade in one after another over ``ramp_steps`` (all on when either is 0 or the ramp is over)."""
    if initial_levels <= 0 or ramp_steps <= 0 or initial_levels >= num_levels:
        return torch.ones(num_levels)
    pending = num_levels - initial_levels
    progress = min(max(step / ramp_steps, 0.0), 1.0) * pending  # in "levels switched on so far"
    offsets = torch.arange(num_levels, dtype=torch.float32) - initial_levels
    return (progress - offsets).clamp(0.0, 1.0)


class AvatarField(nn.Module):
    """SDF and colour in canonical space.

    Args:
        config: the field's settings.
        bounds: [2,3] canonical box the hash grid covers (a margin around the canonical body).
        prior_sdf: callable mapping canonical points [N,3] to the body's signed distance [N].
    """

    def __init__(self, config: AvatarFieldConfig, bounds: Float[Tensor, "2 3"], prior_sdf: nn.Module):
        super().__init__()
        self.config = config
        self.register_buffer("bounds", bounds.clone().float())
        self.prior_sdf = prior_sdf
        self.encoding = DeviceHashEncoding(
            num_levels=config.num_levels,
            min_res=config.base_resolution,
            max_res=config.max_resolution,
            log2_hashmap_size=config.log2_hashmap_size,
            features_per_level=config.features_per_level,
            implementation=config.implementation,
        )
        if config.color_grid == "own" and not config.color_grid_features:
            raise ValueError(
                "sdf_field.color_grid='own' gives the colour head a grid of its own, but sdf_field.color_grid_features "
                "is False, so the head reads no grid: set --pipeline.model.sdf-field.color-grid-features True"
            )
        self.color_encoding = (
            DeviceHashEncoding(
                num_levels=config.num_levels,
                min_res=config.base_resolution,
                max_res=config.color_grid_max_resolution,
                log2_hashmap_size=config.log2_hashmap_size,
                features_per_level=config.features_per_level,
                implementation=config.implementation,
            )
            if config.color_grid == "own"
            else None
        )
        self.register_buffer("level_weights", torch.ones(config.num_levels), persistent=False)
        self.set_progress(0)
        layers = []
        width_in = self.encoding.get_out_dim() + 3
        for _ in range(config.num_layers):
            layers += [nn.Linear(width_in, config.hidden_dim), nn.Softplus(beta=100)]
            width_in = config.hidden_dim
        self.geometry_mlp = nn.Sequential(*layers)
        self.geometry_head = nn.Linear(width_in, 1 + config.geo_feature_dim)
        with torch.no_grad():  # start exactly at the body prior: zero residual
            self.geometry_head.weight[0].zero_()
            self.geometry_head.bias[0].zero_()

        self.direction_encoding = SHEncoding(levels=config.sh_levels) if config.sh_levels > 0 else None
        direction_dim = self.direction_encoding.get_out_dim() if self.direction_encoding is not None else 0
        self.pose_encoder = nn.Linear(69, config.pose_feature_dim) if config.pose_feature_dim > 0 else None
        color_in = config.geo_feature_dim + 3 + direction_dim + config.pose_feature_dim
        if config.color_grid_features:
            color_in += self.encoding.get_out_dim()
        color_layers = []
        for _ in range(config.color_num_layers):
            color_layers += [nn.Linear(color_in, config.color_hidden_dim), nn.ReLU()]
            color_in = config.color_hidden_dim
        color_layers += [nn.Linear(color_in, 3), nn.Sigmoid()]
        self.color_mlp = nn.Sequential(*color_layers)
        self.shading: Optional[nn.Module] = None
        if config.shading in ("auto", "directional"):
            self.shading = DirectionalLightShading()
        elif config.shading == "spherical_harmonics":
            self.shading = SphericalHarmonicsShading(config.shading_sh_levels)
        self._register_load_state_dict_pre_hook(self._shading_as_saved)
        self.use_residual = True
        """False renders the body prior alone (for comparisons); not saved."""
        self.log_inv_s = nn.Parameter(torch.tensor(float(torch.log(torch.tensor(config.init_inv_s)))))

    def _shading_as_saved(self, state_dict: Dict[str, Tensor], prefix: str, *_) -> None:
        """Under ``shading="auto"`` a checkpoint that holds spherical-harmonics coefficients loads with them,
        not with an untrained light in their place."""
        saved = state_dict.get(prefix + "shading.coefficients")
        if saved is None or self.config.shading != "auto" or isinstance(self.shading, SphericalHarmonicsShading):
            return
        self.shading = SphericalHarmonicsShading(round(saved.shape[0] ** 0.5)).to(saved.device)

    def set_progress(self, step: int) -> None:
        """Switch hash levels on as training goes (see ``coarse_to_fine_levels``)."""
        self.level_weights.copy_(
            coarse_to_fine_level_weights(
                self.config.num_levels, self.config.coarse_to_fine_levels, self.config.coarse_to_fine_steps, step
            )
        )

    def normalize(self, points: Float[Tensor, "*bs 3"]) -> Float[Tensor, "*bs 3"]:
        """Canonical points to the hash grid's unit cube (clamped: the grid is only defined inside)."""
        return ((points - self.bounds[0]) / (self.bounds[1] - self.bounds[0])).clamp(0.0, 1.0)

    def sdf_parts(self, flat: Float[Tensor, "N 3"]) -> Tuple[Tensor, Tensor, Tensor]:
        """The body prior's SDF ``[N, 1]``, the full SDF ``[N, 1]`` and the colour head's geometry features."""
        features = self.encoding(self.normalize(flat)).float()
        features = features * self.level_weights.repeat_interleave(self.config.features_per_level)
        hidden = self.geometry_mlp(torch.cat([features, flat], dim=-1))
        head = self.geometry_head(hidden)
        residual = self.config.residual_scale * torch.tanh(head[:, :1] / self.config.residual_scale)
        if not self.use_residual:
            residual = torch.zeros_like(residual)
        prior = self.prior_sdf(flat)[:, None]
        if self.color_encoding is not None:
            features = self.color_encoding(self.normalize(flat)).float()
        color_features = torch.cat([head[:, 1:], features], dim=-1) if self.config.color_grid_features else head[:, 1:]
        return prior, prior + residual, color_features

    def forward_geonetwork(self, points: Float[Tensor, "*bs 3"]) -> Float[Tensor, "*bs C"]:
        """``[sdf, features]`` at canonical points (the contract ``ns-export marching-cubes`` uses); the features
        are the geometry MLP's, then the hash grid's when ``color_grid_features``: what the colour head reads."""
        _, sdf, features = self.sdf_parts(points.reshape(-1, 3))
        return torch.cat([sdf, features], dim=-1).reshape(*points.shape[:-1], -1)

    def get_sdf(self, points: Float[Tensor, "*bs 3"]) -> Float[Tensor, "*bs 1"]:
        return self.forward_geonetwork(points)[..., :1]

    def sdf_and_gradient(self, points: Float[Tensor, "N 3"]) -> FieldGeometry:
        """SDF, geometry features, the SDF's gradient w.r.t. ``points`` (kept in the graph for the eikonal
        loss) and the body prior's SDF. ``points`` may be a non-leaf tensor (the backward deformation's output)."""
        with torch.enable_grad():
            if not points.requires_grad:
                points = points.detach().requires_grad_(True)
            prior, sdf, features = self.sdf_parts(points)
            (gradient,) = torch.autograd.grad(
                sdf, points, grad_outputs=torch.ones_like(sdf), create_graph=self.training, retain_graph=True
            )
        return FieldGeometry(sdf=sdf, features=features, gradient=gradient, prior_sdf=prior)

    def prior_gradient(self, points: Float[Tensor, "N 3"]) -> Float[Tensor, "N 3"]:
        """The body prior's SDF gradient at canonical ``points`` (no graph: the prior has nothing to learn)."""
        with torch.enable_grad():
            leaf = points.detach().requires_grad_(True)
            (gradient,) = torch.autograd.grad(self.prior_sdf(leaf).sum(), leaf)
        return gradient

    def get_color(
        self,
        features: Float[Tensor, "*bs C"],
        normals: Float[Tensor, "*bs 3"],
        directions: Float[Tensor, "*bs 3"],
        body_pose: Optional[Float[Tensor, "*bs 69"]] = None,
        shading_normals: Optional[Float[Tensor, "*bs 3"]] = None,
    ) -> Float[Tensor, "*bs 3"]:
        """Colour from canonical features, the normal the head sees, view direction and pose; with
        ``shading_normals`` (unit, observation space) the head's output is albedo, lit by ``self.shading``."""
        inputs = [features, normals]
        if self.direction_encoding is not None:
            inputs.append(self.direction_encoding(directions))  # torch SH: unit vectors in
        if self.pose_encoder is not None:
            pose = body_pose if body_pose is not None else features.new_zeros(*features.shape[:-1], 69)
            inputs.append(self.pose_encoder(pose))
        colour = self.color_mlp(torch.cat(inputs, dim=-1))
        if shading_normals is not None:
            if self.shading is None:
                raise ValueError("get_color was given shading normals, but sdf_field.shading is 'none'")
            colour = colour * self.shading(shading_normals)
        return colour

    def inv_s(self) -> Tensor:
        return torch.exp(self.log_inv_s).clamp(1.0, 1e6)

    def get_param_groups(self) -> Dict[str, list]:
        return {"fields": list(self.parameters())}


def hash_backend(field: AvatarField) -> str:
    """Which hash-grid implementation ``field`` actually runs ("tcnn" quietly falls back to torch
    when tiny-cuda-nn is missing)."""
    return "tcnn" if getattr(field.encoding, "tcnn_encoding", None) is not None else "torch"
