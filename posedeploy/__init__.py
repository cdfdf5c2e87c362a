"""posedeploy: multi-hypothesis 3D human pose lifting with adaptive noise sampling (PRPose),
from PyTorch training to torch-free deployment."""

__version__ = "0.1.0"

from posedeploy.errors import PoseDeployError

__all__ = ["PoseDeployError", "__version__"]
