"""The naive microservice baseline: FastAPI + uvicorn around the same model file, JSON in and out.

What a team writes when it does not use an inference server: one process, one request at a
time (an ``async def`` endpoint calls the framework inline, so requests never overlap or
batch), JSON bodies ``{"inputs": {name: nested list}}`` -> ``{"outputs": {name: nested list}}``.
The bench starts it itself:

    TDEPLOY_NAIVE_REPOSITORY=model_repository TDEPLOY_NAIVE_MODEL=my_model \\
        python -m uvicorn triton_deploy.bench.naive_service:app --port 9000

The model runs exactly as in the in-process ceiling (``triton_deploy.bench.inprocess``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
from fastapi import FastAPI, HTTPException

from triton_deploy.bench.inprocess import load_in_process
from triton_deploy.bench.payloads import model_info

_info = model_info(Path(os.environ["TDEPLOY_NAIVE_REPOSITORY"]), os.environ["TDEPLOY_NAIVE_MODEL"])
_model = load_in_process(_info)
_dtypes = {t.name: t.numpy_dtype for t in _info.inputs}
app = FastAPI(title=f"naive {_info.name}")


@app.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok", "model": _info.name}


@app.post("/predict")
async def predict(body: dict[str, Any]) -> dict[str, Any]:
    try:
        inputs = {name: np.asarray(body["inputs"][name], dtype=_dtypes[name]) for name in _dtypes}
    except (KeyError, TypeError, ValueError) as exc:
        raise HTTPException(status_code=400, detail=f"bad inputs: {exc}") from None
    outputs = _model(inputs)
    return {"outputs": {name: value.tolist() for name, value in outputs.items()}}
