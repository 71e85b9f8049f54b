"""Version matching follows the OSV algorithm and agrees with ``packaging``'s specifier semantics."""

from __future__ import annotations

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from packaging.specifiers import SpecifierSet
from packaging.version import Version

from bastion.vulns.matching import is_affected, range_affects

_release = st.lists(st.integers(min_value=0, max_value=12), min_size=1, max_size=3).map(
    lambda parts: ".".join(map(str, parts)))
_pre = st.one_of(st.just(""), st.sampled_from(["a", "b", "rc"]).flatmap(
    lambda tag: st.integers(0, 3).map(lambda n: f"{tag}{n}")))
_post = st.one_of(st.just(""), st.integers(0, 2).map(lambda n: f".post{n}"))
_dev = st.one_of(st.just(""), st.integers(0, 2).map(lambda n: f".dev{n}"))
versions = st.tuples(_release, _pre, _post, _dev).map(lambda t: "".join(t))


def _r(*events: tuple[str, str]) -> tuple[tuple[tuple[str, str], ...], ...]:
    return (tuple(events),)


def _ge(v: str, bound: str) -> bool:
    # ``>=`` has no special cases in PEP 440 (``<V`` excludes V's pre-releases; OSV orders them below V)
    return SpecifierSet(f">={bound}").contains(v, prereleases=True)


def _from(v: str, introduced: str) -> bool:
    # OSV's "introduced: 0" means "from the very first version" (below 0.dev0 too)
    return introduced == "0" or _ge(v, introduced)


@settings(max_examples=150, deadline=None)
@given(v=versions, a=versions, b=versions)
def test_introduced_fixed_agrees_with_specifier(v: str, a: str, b: str) -> None:
    lo, hi = sorted([a, b], key=Version)
    expected = _from(v, lo) and not _ge(v, hi)
    assert is_affected(v, _r(("introduced", lo), ("fixed", hi)), ()) == expected


@settings(max_examples=150, deadline=None)
@given(v=versions, a=versions, b=versions)
def test_introduced_last_affected_agrees_with_specifier(v: str, a: str, b: str) -> None:
    lo, hi = sorted([a, b], key=Version)
    expected = _from(v, lo) and SpecifierSet(f"<={hi}").contains(v, prereleases=True)
    assert is_affected(v, _r(("introduced", lo), ("last_affected", hi)), ()) == expected


@settings(max_examples=120, deadline=None)
@given(v=versions, hi=versions)
def test_introduced_zero_means_every_version_below_the_fix(v: str, hi: str) -> None:
    assert is_affected(v, _r(("introduced", "0"), ("fixed", hi)), ()) == (not _ge(v, hi))


@settings(max_examples=120, deadline=None)
@given(v=versions, cuts=st.lists(versions, min_size=4, max_size=4, unique_by=Version))
def test_two_intervals_in_one_range(v: str, cuts: list[str]) -> None:
    a, b, c, d = sorted(cuts, key=Version)
    assume(c != "0")  # "introduced: 0" is OSV's "from the first version", not the version 0
    # events in arbitrary order: the algorithm sorts them
    events = (("fixed", d), ("introduced", c), ("fixed", b), ("introduced", a))
    expected = (_from(v, a) and not _ge(v, b)) or (_ge(v, c) and not _ge(v, d))
    assert is_affected(v, (events,), ()) == expected


@settings(max_examples=100, deadline=None)
@given(v=versions, lo=versions)
def test_open_ended_introduced(v: str, lo: str) -> None:
    assert is_affected(v, _r(("introduced", lo)), ()) == _from(v, lo)


def test_a_pre_release_of_the_fixed_version_is_affected() -> None:
    # OSV orders 2.0rc1 before the fix in 2.0 (packaging's "<2.0" would exclude it): fail closed
    assert is_affected("2.0rc1", _r(("introduced", "1.0"), ("fixed", "2.0")), ()) is True
    assert is_affected("2.0", _r(("introduced", "1.0"), ("fixed", "2.0")), ()) is False
    assert is_affected("2.0.post1", _r(("introduced", "1.0"), ("last_affected", "2.0")), ()) is False


@pytest.mark.parametrize(
    ("installed", "listed", "expected"),
    [("1.2.0", ["1.2.0"], True), ("1.2", ["1.2.0"], True), ("1.2.1", ["1.2.0"], False),
     ("1.0rc1", ["1.0"], False), ("1.0.post1", ["1.0"], False), ("2!1.0", ["1.0"], False),
     ("weird-legacy", ["weird-legacy"], True), ("weird-legacy", ["1.0"], False)],
)
def test_explicit_versions(installed: str, listed: list[str], expected: bool) -> None:
    assert is_affected(installed, (), listed) is expected


def test_unparsable_range_does_not_match_but_explicit_list_still_does() -> None:
    ranges = _r(("introduced", "not a version"), ("fixed", "2.0"))
    assert range_affects(Version("1.0"), ranges[0]) is None
    assert is_affected("1.0", ranges, ()) is False
    assert is_affected("1.0", ranges, ["1.0"]) is True


def test_introduced_zero_precedes_dev_releases_of_zero() -> None:
    assert is_affected("0.dev0", _r(("introduced", "0"), ("fixed", "1.0")), ()) is True
    assert is_affected("0", _r(("introduced", "0"), ("fixed", "0.dev0")), ()) is False


def test_unparsable_installed_version_only_matches_explicitly() -> None:
    assert is_affected("not-pep440", _r(("introduced", "0")), ()) is False


_event = st.tuples(st.sampled_from(["introduced", "fixed", "last_affected"]), st.one_of(versions, st.just("0")))


@settings(max_examples=150, deadline=None)
@given(v=versions, ranges=st.lists(st.lists(_event, min_size=1, max_size=4), max_size=3),
       listed=st.lists(versions, max_size=3))
def test_compiled_entry_answers_like_the_reference_algorithm(v: str, ranges: list[list[tuple[str, str]]],
                                                              listed: list[str]) -> None:
    from bastion.vulns.matching import CompiledEntry

    as_json = [[list(e) for e in r] for r in ranges]
    assert CompiledEntry(as_json, listed).affects(v) == is_affected(v, as_json, listed)


def test_fixed_after_names_the_lowest_fix_above_the_installed_version() -> None:
    from bastion.vulns.matching import CompiledEntry

    entry = CompiledEntry([[["introduced", "0"], ["fixed", "1.2"]], [["introduced", "2.0"], ["fixed", "2.3.1"]]], [])
    assert (entry.fixed_after("1.0"), entry.fixed_after("2.1"), entry.fixed_after("3.0")) == ("1.2", "2.3.1", None)
