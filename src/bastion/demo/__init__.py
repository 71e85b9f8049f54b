"""`bastion demo`: the whole lifecycle on bundled data in a throwaway project."""

from __future__ import annotations

from bastion.demo.run import DemoContext, run_demo

__all__ = ["DemoContext", "run_demo"]
