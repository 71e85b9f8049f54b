"""Every kind of name is matched whole: a trailing newline (or any suffix) never passes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from bastion.errors import BastionError


def _model(n: str) -> Any:
    from bastion.registry.refs import check_name

    return check_name(n, "model name")


def _alias(n: str) -> Any:
    from bastion.registry.refs import check_alias

    return check_alias(n)


def _ref(n: str) -> Any:
    from bastion.registry.refs import parse_ref

    return parse_ref(f"churn@{n}")


def _signing_key(n: str) -> Any:
    from bastion.crypto.signing.keys import _check_name

    return _check_name(n)


def _prediction_log(n: str) -> Any:
    from bastion.monitor.prediction_log import _check_name

    return _check_name(n)


def _api_key_name(n: str) -> Any:
    from bastion.serve.auth import _NAME_RE

    if not _NAME_RE.fullmatch(n):
        raise BastionError("bad")
    return n


def _user(n: str) -> Any:
    from bastion.ui.users import _NAME

    if not _NAME.fullmatch(n):
        raise BastionError("bad")
    return n


CHECKERS: list[Callable[[str], Any]] = [_model, _alias, _ref, _signing_key, _prediction_log, _api_key_name, _user]


@pytest.mark.parametrize("check", CHECKERS, ids=lambda c: c.__name__.strip("_"))
@pytest.mark.parametrize("suffix", ["\n", "\r\n", " ", "\x00", "\nx"])
def test_suffix_after_a_good_name_is_refused(check: Callable[[str], Any], suffix: str) -> None:
    check("production")  # the good row
    with pytest.raises(BastionError):
        check("production" + suffix)


def test_api_key_token_pattern_is_whole() -> None:
    from bastion.serve.auth import _KEY_RE

    token = "bst_0123abcd_" + "A" * 43
    assert _KEY_RE.fullmatch(token)
    assert _KEY_RE.fullmatch(token + "\n") is None


def test_reference_with_whitespace_is_not_trimmed_into_another() -> None:
    from bastion.registry.refs import parse_ref

    with pytest.raises(BastionError, match="whitespace"):
        parse_ref("churn@production\n")
    with pytest.raises(BastionError, match="whitespace"):
        parse_ref(" churn:1")
