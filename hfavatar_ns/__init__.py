"""hfavatar: HF-Avatar (high-fidelity animatable human avatars) as a nerfstudio method plugin.

Kept import-light on purpose: nerfstudio imports every plugin's entry points on each ``ns-*`` command.
"""

__version__ = "0.1.0"
