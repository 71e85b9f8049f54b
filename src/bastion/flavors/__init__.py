"""Model flavors: one module per framework behind one interface (detect, validate, load without running code,
predict through an adapter, input signature, framework requirement).

Built-in flavors are imported directly; third-party flavors load from the ``bastion.flavors`` entry points.
"""

from __future__ import annotations

from bastion.flavors._registry import (
    SERVABLE,
    detect_flavor,
    flavor_names,
    get_flavor,
    is_servable,
)
from bastion.flavors.interface import (
    Flavor,
    FlavorInfo,
    InputSignature,
    ModelAdapter,
    TensorSpec,
    inputs_summary,
    signature_summary,
)

__all__ = [
    "SERVABLE",
    "Flavor",
    "FlavorInfo",
    "InputSignature",
    "ModelAdapter",
    "TensorSpec",
    "detect_flavor",
    "flavor_names",
    "get_flavor",
    "inputs_summary",
    "is_servable",
    "signature_summary",
]
