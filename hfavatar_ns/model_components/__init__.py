"""Model components of HF-Avatar (samplers, ...), nerfstudio-style building blocks.

Kept import-light: import the components from their modules, e.g.
``from hfavatar_ns.model_components.inner_sampler import InnerSampler``.
"""
