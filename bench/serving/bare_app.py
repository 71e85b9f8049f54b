"""The floor: a bare FastAPI app that parses the body with pydantic and calls predict (no security layers).

Started as ``BARE_MODEL=model.skops python -m uvicorn bare_app:app --port PORT --workers N`` from this folder
(run.py does). Not as a script: uvicorn's spawned workers would re-run a script's top level (imports and the
model load) before answering the supervisor's health ping, and on a loaded machine be killed and respawned
in a loop.
"""

from __future__ import annotations

import os

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
