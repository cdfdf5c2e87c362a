"""The torch-free runtime: numpy plus one inference engine (ONNX Runtime here; TensorRT to come).

Nothing under this package imports torch or onnx, so it installs and runs on a Jetson or in a
slim container with only numpy and onnxruntime.
"""

from posedeploy.runtime.backend import Backend, TensorSpec
from posedeploy.runtime.backend_choice import open_backend
from posedeploy.runtime.lifter import LiftResult, MultiHypothesisLifter
from posedeploy.runtime.stream import PersonResult, PoseStream

__all__ = ["Backend", "LiftResult", "MultiHypothesisLifter", "PersonResult", "PoseStream", "TensorSpec", "open_backend"]
