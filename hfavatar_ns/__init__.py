"""hfavatar: HF-Avatar (high-fidelity animatable human avatars) as a nerfstudio method plugin.

Kept import-light on purpose: nerfstudio imports every plugin's entry points on each ``ns-*`` command.
"""

import warnings

__version__ = "0.1.0"

# Deprecation notices that torch and torchmetrics print for nerfstudio's own code on import (nothing a
# user can act on); every other warning still shows.
for _message in (
    r"`torch\.cuda\.amp\.custom_(fwd|bwd)\(args\.\.\.\)` is deprecated",
    r"`torch\.jit\.script` is deprecated",
    r"`torch\.jit\.trace` is deprecated",
    r"Importing `spectral_angle_mapper` from `torchmetrics\.functional` was deprecated",
):
    warnings.filterwarnings("ignore", message=_message, category=FutureWarning)
