"""The web dashboard: inventory, model versions, monitoring, datasets, audit log and operator actions.

``create_ui_app(project_root)`` returns the FastAPI app; ``bastion ui`` serves it.
"""

from __future__ import annotations

from bastion.ui.app import create_ui_app

__all__ = ["create_ui_app"]
