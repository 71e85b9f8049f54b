from __future__ import annotations

import pytest

from bastion.errors import RegistryError
from bastion.registry.refs import Ref, parse_ref


@pytest.mark.parametrize(
    "text,expected",
    [
        ("churn:3", Ref("churn", version=3)),
        ("churn@production", Ref("churn", alias="production")),
        ("churn", Ref("churn")),
        ("my.model_v2-x:10", Ref("my.model_v2-x", version=10)),
    ],
)
def test_good_refs(text: str, expected: Ref) -> None:
    assert parse_ref(text) == expected
    assert str(parse_ref(text)) == text


@pytest.mark.parametrize(
    "text",
    [
        "",
        " ",
        "churn:0",
        "churn:-1",
        "churn:x",
        "../etc:1",
        "a/b:1",
        "churn@",
        "churn@1prod",
        "name with space",
        "-lead:1",
        "a" * 129,
        "x@prod@uction",
        "n..m:1",
        "churn:3:4",
    ],
)
def test_bad_refs(text: str) -> None:
    with pytest.raises(RegistryError):
        parse_ref(text)
