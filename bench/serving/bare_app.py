"""The floor: a bare FastAPI app that parses the body with pydantic and calls predict (no security layers).

Started as ``BARE_MODEL=model.skops python bare_app.py - PORT WORKERS`` (from this folder).
"""

from __future__ import annotations

import os
import sys

import numpy as np
import skops.io as sio
from fastapi import FastAPI
from pydantic import BaseModel, create_model

N = int(os.environ.get("BARE_N_FEATURES", "30"))
FEATURES = [f"f{i}" for i in range(N)]
Row = create_model("Row", **{f: (float, ...) for f in FEATURES})


class Body(BaseModel):
    instances: list[Row]  # type: ignore[valid-type]


model = sio.load(os.environ["BARE_MODEL"], trusted=sio.get_untrusted_types(file=os.environ["BARE_MODEL"]))
app = FastAPI()


@app.post("/v1/models/sample:predict")
async def predict(body: Body) -> dict:
    x = np.array([[getattr(r, f) for f in FEATURES] for r in body.instances], dtype=np.float64)
    return {"predictions": model.predict(x).tolist()}


if __name__ == "__main__":
    import uvicorn

    uvicorn.run("bare_app:app", host="127.0.0.1", port=int(sys.argv[2]), workers=int(sys.argv[3]),
                log_level="warning", access_log=False)
