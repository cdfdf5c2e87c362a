"""posedeploy: multi-hypothesis 3D human pose lifting with adaptive noise sampling (PRPose),
from PyTorch training to torch-free deployment."""

import logging

__version__ = "0.1.0"

from posedeploy.errors import PoseDeployError

# The library logs what it does (progress, choices, warnings) and prints nothing itself: the command
# line shows it on stderr; a program using the API sees it only if it configures logging.
logging.getLogger(__name__).addHandler(logging.NullHandler())

__all__ = ["PoseDeployError", "__version__"]
