"""ONNX models through onnxruntime: inputs, outputs and class labels come from the graph.

A single tensor input takes the features in the training dataset's column order; several inputs are named
features themselves. Outputs are a label tensor plus probabilities (a tensor or a ZipMap), probabilities alone
(an output named ``probabilities``, e.g. a PyTorch network exported with a softmax), or one regression value.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from bastion.errors import DataError
from bastion.flavors.interface import Flavor, FlavorInfo, InputSignature, ModelAdapter, TensorSpec, require

__all__ = ["OnnxAdapter", "OnnxFlavor"]

_NUMPY = {
    "tensor(float)": np.float32, "tensor(double)": np.float64, "tensor(int64)": np.int64, "tensor(int32)": np.int32,
    "tensor(float16)": np.float16, "tensor(bool)": np.bool_, "tensor(string)": np.str_,
    "tensor(int8)": np.int8, "tensor(int16)": np.int16, "tensor(uint8)": np.uint8,
}
_PROBA_NAMES = ("probabilities", "probability", "output_probability", "probs", "proba")
THREADS_ENV = "BASTION_ONNX_THREADS"


def _elem(t: str) -> str:
    return t[len("tensor("):-1] if t.startswith("tensor(") else t


def _shape(shape: Any) -> tuple[int | None, ...]:
    return tuple(d if isinstance(d, int) else None for d in (shape or []))


def _class_labels(data: bytes) -> list[Any] | None:
    """Class labels a classifier node of the graph declares (ai.onnx.ml), when the onnx package is there."""
    try:
        import onnx
    except ImportError:
        return None
    try:
        model = onnx.load_model_from_string(data)
    except Exception:
        return None
    for node in model.graph.node:
        for attr in node.attribute:
            if attr.name == "classlabels_int64s" and attr.ints:
                return [int(v) for v in attr.ints]
            if attr.name == "classlabels_strings" and attr.strings:
                return [s.decode("utf-8", "replace") for s in attr.strings]
    return None


class OnnxAdapter(ModelAdapter):
    flavor = "onnx"

    def __init__(self, session: Any, classes_hint: list[Any] | None) -> None:
        self.session = session
        inputs, outputs = session.get_inputs(), session.get_outputs()
        self.inputs = tuple(TensorSpec(i.name, _elem(i.type), _shape(i.shape)) for i in inputs)
        self.outputs = tuple(TensorSpec(o.name, o.type, _shape(o.shape)) for o in outputs)
        self._in_types = [_NUMPY.get(i.type) for i in inputs]
        unsupported = [i.name for i, t in zip(inputs, self._in_types, strict=True) if t is None]
        if unsupported:
            raise DataError(f"The ONNX model's inputs {unsupported} have types Bastion cannot feed "
                            f"({[i.type for i in inputs if i.name in unsupported]}); use numeric or string tensors.")
        self.label_out: str | None = None
        self.proba_out: str | None = None
        self.proba_is_map = False
        for o in outputs:
            if o.type.startswith("seq(map("):
                self.proba_out, self.proba_is_map = o.name, True
            elif self.label_out is None and o.type in ("tensor(int64)", "tensor(string)", "tensor(int32)") \
                    and len(outputs) > 1:
                self.label_out = o.name
            elif self.proba_out is None and o.type in ("tensor(float)", "tensor(double)") and (
                    self.label_out is not None or o.name.lower() in _PROBA_NAMES):
                self.proba_out = o.name
        self.value_out = outputs[0].name if self.proba_out is None and self.label_out is None else None
        classes: list[Any] | None = None
        if self.proba_out is not None:
            width = self.outputs[[o.name for o in outputs].index(self.proba_out)].shape
            k = width[1] if len(width) == 2 and width[1] is not None else None
            if classes_hint is not None and (k is None or k == len(classes_hint) or self.proba_is_map):
                classes = list(classes_hint)
            elif k is not None and k >= 2:
                classes = list(range(k))
            elif k == 1:
                classes = [0, 1]
            else:
                raise DataError("The ONNX model's probability output has no fixed width and the graph declares no "
                                "class labels; export it with a fixed number of classes.")
        self.single = len(inputs) == 1
        n: int | None
        if self.single:
            shp = self.inputs[0].shape
            n = shp[1] if len(shp) == 2 else (1 if len(shp) == 1 else None)
            names = None
        else:
            n, names = len(inputs), [i.name for i in inputs]
        self._fetch = [x for x in (self.label_out, self.proba_out, self.value_out) if x is not None]
        super().__init__(classes=classes, feature_names=names, n_features=n)

    def _matrix(self, x: Any) -> Any:
        if self.single:
            t = self._in_types[0]
            if t is np.str_:  # text features: never through float
                names = getattr(self, "feature_names_in_", None)
                if hasattr(x, "columns"):
                    x = (x[list(names)] if names is not None else x).to_numpy(dtype=object)
                arr = np.asarray(x, dtype=object).astype(str)
                arr = arr.reshape(1, -1) if arr.ndim == 1 else arr
            else:
                arr = super()._matrix(x).astype(t, copy=False)
            return {self.inputs[0].name: arr.reshape(-1) if len(self.inputs[0].shape) == 1 else arr}
        feed: dict[str, Any] = {}
        if hasattr(x, "columns"):
            cols = [x[s.name].to_numpy() for s in self.inputs]
        else:
            a = np.asarray(x, dtype=object if any(t is np.str_ for t in self._in_types) else np.float64)
            a = a.reshape(1, -1) if a.ndim == 1 else a
            cols = [a[:, j] for j in range(a.shape[1])]
        for spec, t, col in zip(self.inputs, self._in_types, cols, strict=True):
            v = np.asarray(col).astype(str if t is np.str_ else t).reshape(-1, 1)
            feed[spec.name] = v if len(spec.shape) != 1 else v.reshape(-1)
        return feed

    def _run(self, feed: dict[str, Any]) -> dict[str, Any]:
        return dict(zip(self._fetch, self.session.run(self._fetch, feed), strict=True))

    def _raw(self, x: Any) -> Any:
        out = self._run(x)
        return out[self.value_out] if self.value_out is not None else out

    def predict(self, x: Any) -> np.ndarray:
        if self._classes is None:
            return np.asarray(self._run(self._matrix(x))[self._fetch[0]], dtype=np.float64).reshape(-1)
        labels, _ = self.predict_with_proba(x)
        return labels

    def predict_with_proba(self, x: Any) -> tuple[np.ndarray, np.ndarray]:
        if self._classes is None:
            raise AttributeError("a regression model has no probabilities")
        out = self._run(self._matrix(x))
        proba: np.ndarray
        if self.proba_out is None:  # labels only: one-hot
            assert self.label_out is not None  # a classifier has a label or a probability output
            labels = np.asarray(out[self.label_out]).reshape(-1)
            proba = (labels[:, None] == self._classes[None, :]).astype(np.float64)
            return labels, proba
        raw = out[self.proba_out]
        if self.proba_is_map:
            keys = list(self._classes)
            proba = np.array([[float(row[k]) for k in keys] for row in raw], dtype=np.float64)
        else:
            proba = self._probabilities(raw)
        if self.label_out is not None:  # the model's own labels, as it computed them
            return np.asarray(out[self.label_out]).reshape(-1), proba
        return self._classes[np.argmax(proba, axis=1)], proba


def _session_options(ort: Any) -> Any:
    so = ort.SessionOptions()
    try:
        threads = int(os.environ.get(THREADS_ENV, "1"))
    except ValueError:
        threads = 1
    so.intra_op_num_threads = max(1, threads)
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    return so


class OnnxFlavor(Flavor):
    name: ClassVar[str] = "onnx"
    extra: ClassVar[str] = "onnx"
    dist: ClassVar[str] = "onnxruntime"

    def detect(self, path: Path, head: bytes) -> bool:
        from bastion.scan.detect import looks_like_onnx

        return path.suffix.lower() == ".onnx" or looks_like_onnx(head)

    def load(self, data: bytes, *, what: str, trusted: list[str] | None = None) -> OnnxAdapter:
        ort = require("onnxruntime", extra=self.extra, what="An ONNX model")
        try:
            session = ort.InferenceSession(data, sess_options=_session_options(ort), providers=["CPUExecutionProvider"])
        except Exception as e:  # InvalidProtobuf, Fail, InvalidGraph: a refused artifact
            first = str(e).splitlines()[0][:300] if str(e) else type(e).__name__
            raise DataError(f"{what} could not be loaded by onnxruntime: {first}") from e
        return OnnxAdapter(session, _class_labels(data))

    def info(self, model: Any) -> FlavorInfo:
        base = super().info(model)
        producer = ""
        try:
            meta = model.session.get_modelmeta()
            producer = str(meta.producer_name or "")
        except Exception:
            producer = ""
        reqs = base.requirements + (("onnx==" + _onnx_version(),) if _onnx_version() != "unknown" else ())
        notes = (f"producer (from the artifact, informational): {producer}",) if producer else ()
        return FlavorInfo(flavor=base.flavor, framework=base.framework, requirements=reqs, signature=base.signature,
                          task=base.task, classes=base.classes, notes=notes)

    def signature(self, model: Any) -> InputSignature | None:
        base = super().signature(model)
        assert base is not None
        return InputSignature(features=base.features, n_features=base.n_features, tensors=model.inputs,
                              outputs=model.outputs)


def _onnx_version() -> str:
    from bastion.flavors.interface import dist_version

    return dist_version("onnx")
