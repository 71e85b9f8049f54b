"""LightGBM text models crafted to crash or hang the process that loads or serves them are refused first.

LightGBM trusts the counts and indices of its text format: a count that does not match its array terminates
the process (the trees are parsed in a parallel region), a huge ``num_tree_per_iteration`` segfaults, an
out-of-range feature index segfaults at predict time and a cycle among the nodes never returns. The proofs
run plain LightGBM in a throwaway subprocess; the flavor must refuse the same text with a DataError.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bastion.errors import DataError
from bastion.flavors.lightgbm import LightGBMFlavor

lgb = pytest.importorskip("lightgbm")


@pytest.fixture(scope="module")
def texts() -> dict[str, str]:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 4))
    y = (x[:, 0] > 0).astype(int)
    frame = pd.DataFrame(x, columns=list("abcd"))
    frame["cat"] = pd.Categorical(rng.choice(list("uvwxyz"), 300))
    quiet = {"verbose": -1}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        models = {
            "binary": lgb.train({"objective": "binary", "num_leaves": 4, **quiet}, lgb.Dataset(x[:, :3], y), 2),
            "multiclass": lgb.train({"objective": "multiclass", "num_class": 3, **quiet},
                                    lgb.Dataset(x, np.digitize(x[:, 1], [-0.5, 0.5])), 3),
            "categorical": lgb.train({"objective": "binary", "min_data_per_group": 5, "cat_smooth": 1, **quiet},
                                     lgb.Dataset(frame, frame["cat"].isin(["u", "w", "y"]).astype(int),
                                                 categorical_feature=["cat"]), 3),
            "linear": lgb.train({"objective": "regression", "linear_tree": True, **quiet},
                                lgb.Dataset(x, x[:, 2]), 2),
            "one-leaf": lgb.train({"objective": "binary", "min_data_in_leaf": 1000, **quiet}, lgb.Dataset(x, y), 2),
        }
    return {k: str(b.model_to_string()) for k, b in models.items()}


@pytest.mark.parametrize("kind", ["binary", "multiclass", "categorical", "linear", "one-leaf"])
def test_real_models_load(texts: dict[str, str], kind: str) -> None:
    model = LightGBMFlavor().load(texts[kind].encode(), what=kind)
    n = model.booster.num_feature()
    assert np.asarray(model.booster.predict(np.zeros((2, n)))).shape[0] == 2


def _edit_tree(text: str, index: int, key: str, value: str) -> str:
    """Rewrite one line of a tree block and keep tree_sizes true, as an attacker would."""
    start = text.index(f"Tree={index}\n")
    stop = text.index("\n\n", start)
    block = text[start:stop]
    new = re.sub(rf"^{key}=.*$", f"{key}={value}", block, flags=re.M)
    assert new != block or f"\n{key}=" in block
    text = text[:start] + new + text[stop:]
    sizes = [int(s) for s in re.search(r"tree_sizes=(.*)", text).group(1).split()]  # type: ignore[union-attr]
    sizes[index] += len(new) - len(block)
    return re.sub(r"tree_sizes=.*", "tree_sizes=" + " ".join(map(str, sizes)), text)


def _hostile(texts: dict[str, str], case: str) -> str:
    binary = texts["binary"]
    if case == "huge num_tree_per_iteration":
        return binary.replace("num_tree_per_iteration=1\n", "num_tree_per_iteration=1500000000\n")
    if case == "huge num_class":
        return binary.replace("num_class=1\n", "num_class=1500000000\n")
    if case == "feature names short":
        return binary.replace("max_feature_idx=2\n", "max_feature_idx=5\n")
    if case == "num_leaves beyond its arrays":
        leaves = int(re.search(r"Tree=0\nnum_leaves=(\d+)", binary).group(1))  # type: ignore[union-attr]
        return _edit_tree(binary, 0, "num_leaves", str(leaves + 1))
    if case == "array shorter than num_leaves":
        values = re.search(r"Tree=0\n(?:.*\n)*?leaf_value=(.*)", binary).group(1).split()  # type: ignore[union-attr]
        return _edit_tree(binary, 0, "leaf_value", " ".join(values[:-1]))
    if case == "node cycle":
        return _edit_tree(binary, 0, "right_child", "1 1")
    if case == "feature index out of range":
        return _edit_tree(binary, 0, "split_feature", "0 70000000")
    if case == "leaf index out of range":
        return _edit_tree(binary, 0, "left_child", "-1 -90000000")
    if case == "categorical index out of range":
        text = texts["categorical"]
        index = int(re.search(r"Tree=(\d+)\nnum_leaves=\d+\nnum_cat=[1-9]", text).group(1))  # type: ignore[union-attr]
        block = text[text.index(f"Tree={index}\n"):]
        types = re.search(r"^decision_type=(.*)$", block, flags=re.M).group(1).split()  # type: ignore[union-attr]
        thresholds = re.search(r"^threshold=(.*)$", block, flags=re.M).group(1).split()  # type: ignore[union-attr]
        at = next(i for i, t in enumerate(types) if int(t) & 1)
        thresholds[at] = "99999"
        return _edit_tree(text, index, "threshold", " ".join(thresholds))
    if case == "linear feature out of range":
        text = texts["linear"]
        block = text[text.index("Tree=1\n"):]
        feats = re.search(r"^leaf_features=(.*)$", block, flags=re.M).group(1)  # type: ignore[union-attr]
        return _edit_tree(text, 1, "leaf_features", re.sub(r"\d+", "4000000", feats, count=1))
    raise AssertionError(case)


HOSTILE = ["huge num_tree_per_iteration", "huge num_class", "feature names short", "num_leaves beyond its arrays",
           "array shorter than num_leaves", "node cycle", "feature index out of range", "leaf index out of range",
           "categorical index out of range", "linear feature out of range"]


@pytest.mark.parametrize("case", HOSTILE)
def test_crafted_counts_and_indices_are_refused(texts: dict[str, str], case: str) -> None:
    with pytest.raises(DataError, match=r"not a (valid|complete) LightGBM text model"):
        LightGBMFlavor().load(_hostile(texts, case).encode(), what="model")


_PROOF = """
import sys, numpy as np, lightgbm as lgb
booster = lgb.Booster(model_str=open(sys.argv[1]).read())
print("loaded", flush=True)
booster.predict(np.full((1, 3), 5.0))
print("predicted", flush=True)
"""


def test_plain_lightgbm_crashes_and_hangs_on_the_same_texts(texts: dict[str, str], tmp_path: Path) -> None:
    # both run at once (one interpreter start-up of wall time): a segfault at predict, and a predict that never ends
    procs = {}
    for case in ("huge num_tree_per_iteration", "node cycle"):
        path = tmp_path / f"{case.replace(' ', '-')}.txt"
        path.write_text(_hostile(texts, case))
        procs[case] = subprocess.Popen([sys.executable, "-c", _PROOF, str(path)], stdout=subprocess.PIPE,
                                       stderr=subprocess.DEVNULL, text=True)
    try:
        crash, hang = procs["huge num_tree_per_iteration"], procs["node cycle"]
        assert hang.stdout is not None and hang.stdout.readline() == "loaded\n"
        assert crash.wait(timeout=60) < 0  # killed by a signal (SIGSEGV)
        assert crash.stdout is not None and "predicted" not in crash.stdout.read()
        time.sleep(1)
        assert hang.poll() is None  # still inside predict: the cycle never reaches a leaf
    finally:
        for proc in procs.values():
            proc.kill()
            proc.wait()
            if proc.stdout:
                proc.stdout.close()
