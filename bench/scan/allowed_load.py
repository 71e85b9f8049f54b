"""Timing of loading a version registered with --allow-finding, against a clean version and plain pickle.

Run by bench/scan/run.py in Bastion's venv; prints one JSON object. A scikit-learn pipeline wrapped in a
class of a local module (a finding, allowed with a reason on registration) and the same pipeline unwrapped
(clean) are registered in a scratch project; then each is loaded ``--runs`` times through
``Project.load_model`` (registry read, trust of the recorded allowance against the audit chain, blob read,
restricted unpickling; the in-process load cache is cleared before each load) and through
``restricted_loads``, and the file through ``pickle.loads`` (what an unprotected loader does).
"""

from __future__ import annotations

import argparse
import json
import pickle
import statistics
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any


def _median(fn: Any, runs: int) -> float:
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=21)
    args = ap.parse_args()
    import numpy as np
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from bastion.audit.checkpoints import init_audit_key
    from bastion.project import init_project
    from bastion.registry import _models
    from bastion.scan.restricted import restricted_loads

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "benchwrap.py").write_text(textwrap.dedent("""
            class Wrapper:
                def __init__(self, model):
                    self.model = model
                def predict(self, x):
                    return self.model.predict(x)
        """))
        sys.path.insert(0, str(root))
        import benchwrap

        rng = np.random.default_rng(0)
        x, y = rng.normal(size=(2000, 8)), rng.integers(0, 2, 2000)
        model = make_pipeline(StandardScaler(), RandomForestClassifier(n_estimators=50, random_state=0)).fit(x, y)
        (root / "wrapped.pkl").write_bytes(pickle.dumps(benchwrap.Wrapper(model), protocol=5))
        (root / "plain.pkl").write_bytes(pickle.dumps(model, protocol=5))
        project = init_project(root / "proj")
        init_audit_key(project)
        allowed = project.log_model(root / "wrapped.pkl", name="wrapped", allow_findings={
            "pickle.unknown-callable:benchwrap.Wrapper": "bench: our own wrapper"})
        clean = project.log_model(root / "plain.pkl", name="plain")
        data = (root / "wrapped.pkl").read_bytes()

        def load(ref: str) -> None:
            _models._LOAD_CACHE.clear()
            project.load_model(ref)

        out = {
            "size_bytes": len(data),
            "runs": args.runs,
            "allowed_status": allowed.scan_status,
            "load_model_allowed_s": _median(lambda: load(allowed.ref), args.runs),
            "load_model_clean_s": _median(lambda: load(clean.ref), args.runs),
            "restricted_loads_allowed_s": _median(lambda: restricted_loads(data, allow=["benchwrap.Wrapper"]),
                                                  args.runs),
            "pickle_loads_s": _median(lambda: pickle.loads(data), args.runs),
        }
        project.close()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
