"""Models: the model format, signatures and model URIs (``jupyter_mltrack.models``, MLflow's
``mlflow.models``). Importing this package imports neither numpy nor pandas nor yaml."""

from __future__ import annotations

from jupyter_mltrack.models.info import ModelInfo, get_model_info, set_signature
from jupyter_mltrack.models.model import InvalidModelError, Model
from jupyter_mltrack.models.signature import (
    ColSpec,
    DataType,
    ModelSignature,
    ParamSchema,
    ParamSpec,
    Schema,
    TensorSpec,
    infer_signature,
)

__all__ = [
    "ColSpec",
    "DataType",
    "InvalidModelError",
    "Model",
    "ModelInfo",
    "ModelSignature",
    "ParamSchema",
    "ParamSpec",
    "Schema",
    "TensorSpec",
    "get_model_info",
    "infer_signature",
    "set_signature",
]
