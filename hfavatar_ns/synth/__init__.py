"""``hfavatar-synth``: a synthetic multi-view capture with known geometry, in the raw ZJU-MoCap layout.

A clothed subject (the body model plus wrinkled clothing, hair and a loose flared skirt) walks and
turns in front of a ring of distorted pinhole cameras; every image is ray cast (first hit, embree)
and shaded, and the true clothed meshes are written beside the capture as ground truth.

Kept import-light: the heavy modules are imported by :func:`generate_capture` when it runs.

    from hfavatar_ns.synth import SynthConfig, generate_capture
    generate_capture("data/synth_tiny", SynthConfig.from_preset("tiny"))
"""

from hfavatar_ns.synth.config import PRESETS, SynthConfig


def generate_capture(output_dir, config=None, **options):
    """Write a synthetic capture to ``output_dir`` (see :func:`hfavatar_ns.synth.writer.generate_capture`)."""
    from hfavatar_ns.synth.writer import generate_capture as _generate

    return _generate(output_dir, config if config is not None else SynthConfig.from_preset("default"), **options)


__all__ = ["PRESETS", "SynthConfig", "generate_capture"]
