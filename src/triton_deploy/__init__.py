"""triton-deploy: trained models in, production inference on NVIDIA Triton out.

Light on purpose: importing ``triton_deploy`` (or ``triton_deploy.clients``) pulls no torch,
onnx, xgboost or tensorrt.
"""

from triton_deploy.errors import TritonDeployError

__all__ = ["TritonDeployError", "__version__"]

__version__ = "0.1.0"
