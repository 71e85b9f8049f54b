"""The ONNX floor: a bare FastAPI app that parses the body with pydantic and runs onnxruntime (no security layers).

Started as ``BARE_MODEL=model.onnx BARE_N_FEATURES=30 python bare_onnx_app.py - PORT WORKERS`` (from this folder).
"""

from __future__ import annotations

import os
import sys

import numpy as np
import onnxruntime as ort
from fastapi import FastAPI
from pydantic import BaseModel, create_model

N = int(os.environ.get("BARE_N_FEATURES", "30"))
FEATURES = [f"f{i}" for i in range(N)]
Row = create_model("Row", **{f: (float, ...) for f in FEATURES})


class Body(BaseModel):
    instances: list[Row]  # type: ignore[valid-type]


so = ort.SessionOptions()
so.intra_op_num_threads = 1  # the same setting Bastion's ONNX flavor uses
so.inter_op_num_threads = 1
session = ort.InferenceSession(os.environ["BARE_MODEL"], sess_options=so, providers=["CPUExecutionProvider"])
INPUT = session.get_inputs()[0].name
app = FastAPI()


@app.post("/v1/models/sample:predict")
async def predict(body: Body) -> dict:
    x = np.array([[getattr(r, f) for f in FEATURES] for r in body.instances], dtype=np.float32)
    label, proba = session.run(None, {INPUT: x})
    return {"predictions": label.tolist(), "probabilities": np.round(proba[:, 1].astype(np.float64), 6).tolist()}


if __name__ == "__main__":
    import uvicorn

    uvicorn.run("bare_onnx_app:app", host="127.0.0.1", port=int(sys.argv[2]), workers=int(sys.argv[3]),
                log_level="warning", access_log=False)
