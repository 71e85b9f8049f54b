"""Regenerate the small real PyTorch checkpoints the scanner tests use (torch is not a test dependency).

Run: .venv/bin/python tests/scan/data/make_torch_fixtures.py   (made with torch 2.13.0, CPU build)
"""

from __future__ import annotations

from pathlib import Path

import torch

HERE = Path(__file__).parent / "torch"


def main() -> None:
    HERE.mkdir(exist_ok=True)
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.BatchNorm1d(8), torch.nn.Linear(8, 2))
    optimizer = torch.optim.Adam(net.parameters())
    saves = {
        "state.pt": net.state_dict(),
        "whole.pt": net,
        "ckpt.pt": {"model": net.state_dict(), "optim": optimizer.state_dict(), "epoch": 2},
        "tensors.pt": [torch.zeros(2, dtype=torch.float16), torch.zeros(3).to_sparse()],
    }
    for name, obj in saves.items():
        torch.save(obj, HERE / name)
        torch.save(obj, HERE / f"legacy-{name}", _use_new_zipfile_serialization=False)
    torch.jit.save(torch.jit.script(torch.nn.Linear(2, 2)), HERE / "scripted.pt")


if __name__ == "__main__":
    main()
