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
    r"`torch\.cuda\.amp\.GradScaler\(args\.\.\.\)` is deprecated",
):
    warnings.filterwarnings("ignore", message=_message, category=FutureWarning)

# Notices torch raises inside nerfstudio's trainer and cameras (a loss logged without detach, a list used as
# an index) on every run; only nerfstudio's modules are silenced, so ours still show them. nerfstudio's image
# loader asks for 4 workers whatever the machine; on fewer cores torch's notice about that is all it costs.
for _message in (
    r"Converting a tensor with requires_grad=True to a scalar",
    r"Using a non-tuple sequence for multidimensional indexing is deprecated",
):
    warnings.filterwarnings("ignore", message=_message, category=UserWarning, module=r"nerfstudio\.")
warnings.filterwarnings("ignore", message=r"This DataLoader will create \d+ worker processes", category=UserWarning)
