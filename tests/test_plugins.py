"""Third-party plugin classes: good ones load, broken or wrong ones are skipped and logged, never fatal."""

from __future__ import annotations

import logging
from importlib.metadata import EntryPoint

import pytest

from bastion._plugins import plugin_classes
from bastion.gates.checks import available_checks
from bastion.gates.checks import interface as checks_interface


class GoodCheck(checks_interface.Check):
    name = "good"


class NotACheck:
    pass


def _ep(name: str, target: str) -> EntryPoint:
    return EntryPoint(name=name, value=target, group="bastion.checks")


def test_good_plugins_load_and_bad_ones_are_skipped_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    eps = [
        _ep("good", f"{__name__}:GoodCheck"),
        _ep("wrong", f"{__name__}:NotACheck"),
        _ep("broken", "no_such_module_anywhere:Thing"),
    ]
    with caplog.at_level(logging.WARNING, logger="bastion.test"):
        found = plugin_classes(eps, checks_interface.Check, "check", logging.getLogger("bastion.test"))
    assert found == {"good": GoodCheck}
    assert "check plugin wrong is not a Check subclass" in caplog.text
    assert "check plugin broken failed to load" in caplog.text


def test_check_plugins_never_replace_built_ins(monkeypatch: pytest.MonkeyPatch) -> None:
    import bastion.gates.checks as checks

    monkeypatch.setattr(checks, "entry_points", lambda group: [_ep("performance", f"{__name__}:GoodCheck"),
                                                                _ep("good", f"{__name__}:GoodCheck")])
    checks._plugins.cache_clear()
    try:
        found = available_checks()
        assert found["good"] is GoodCheck
        assert found["performance"] is not GoodCheck
    finally:
        checks._plugins.cache_clear()
