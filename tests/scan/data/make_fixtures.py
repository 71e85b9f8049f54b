"""Regenerate the small real artifacts the scanner tests use, so the tests need none of these
libraries installed: XGBoost/LightGBM pickles, skl2onnx ONNX models, safetensors files and
Keras-style HDF5 files written with h5py.

Run: .venv/bin/python tests/scan/data/make_fixtures.py
(made with xgboost 3.2.0, lightgbm 4.7.0, skl2onnx 1.20.0, safetensors 0.8.0, h5py 3.16.0)
"""

from __future__ import annotations

import json
import pickle
import warnings
from pathlib import Path

import numpy as np

HERE = Path(__file__).parent


def boosting(out: Path) -> None:
    import joblib
    import lightgbm as lgb
    import xgboost as xgb

    rng = np.random.default_rng(0)
    x = rng.random((100, 4))
    y = (x[:, 0] > 0.5).astype(int)
    models = {
        "xgb_classifier": xgb.XGBClassifier(n_estimators=3, max_depth=2).fit(x, y),
        "xgb_booster": xgb.train({"max_depth": 2}, xgb.DMatrix(x, y), 2),
        "lgbm_classifier": lgb.LGBMClassifier(n_estimators=3, num_leaves=4, verbose=-1).fit(x, y),
        "lgbm_booster": lgb.train({"verbose": -1, "num_leaves": 4}, lgb.Dataset(x, y), 2),
    }
    for name, model in models.items():
        (out / f"{name}.pkl").write_bytes(pickle.dumps(model, protocol=4))
        joblib.dump(model, out / f"{name}.joblib", compress=3)


def onnx_models(out: Path) -> None:
    from skl2onnx import to_onnx
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    x = rng.random((60, 3)).astype(np.float32)
    y = (x[:, 0] > 0.5).astype(int)
    for name, est in {"logreg": LogisticRegression(), "forest": RandomForestClassifier(n_estimators=3)}.items():
        (out / f"{name}.onnx").write_bytes(to_onnx(est.fit(x, y), x[:1]).SerializeToString())


def safetensors_files(out: Path) -> None:
    from safetensors.numpy import save_file

    tensors = {"w": np.ones((3, 2), dtype=np.float32), "b": np.zeros(2, dtype=np.int64)}
    save_file(tensors, str(out / "model.safetensors"), metadata={"format": "np"})


def hdf5_files(out: Path) -> None:
    import h5py

    dense = {"class_name": "Dense", "config": {"name": "dense", "units": 2, "activation": "relu"}}
    lam = {"class_name": "Lambda", "config": {"name": "lam", "function": ["4wEAAAAAAAAA", None, None],
                                              "function_type": "lambda", "module": "__main__"}}
    inner = {"class_name": "Sequential", "config": {"name": "inner", "layers": [lam]}}
    for name, layers in {"dense": [dense], "nested_lambda": [dense, inner]}.items():
        config = {"class_name": "Sequential", "config": {"name": "seq", "layers": layers}}
        with h5py.File(out / f"{name}.h5", "w") as f:
            # tf.keras 2 writes JSON as UTF-8 bytes (fixed-length string attributes).
            f.attrs["model_config"] = json.dumps(config).encode("utf8")
            f.attrs["keras_version"] = b"2.15.0"
            f.create_group("model_weights").create_dataset("kernel", data=np.ones((4, 2), dtype=np.float32))
        with h5py.File(out / f"{name}_vlen.h5", "w") as f:
            f.attrs["model_config"] = json.dumps(config)  # h5py str: variable-length, in the global heap
            f.create_dataset("weights", data=np.ones(8))


def main() -> None:
    warnings.filterwarnings("ignore")
    for sub, build in {"boosting": boosting, "onnx": onnx_models, "safetensors": safetensors_files,
                       "hdf5": hdf5_files}.items():
        folder = HERE / sub
        folder.mkdir(exist_ok=True)
        build(folder)


if __name__ == "__main__":
    main()
