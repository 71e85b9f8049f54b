"""Attacks on monitoring by someone who knows the design: values that break the statistics, drift kept
out of the tests' sight, configs that switch rules off, probing and extraction shaped to slip under the
rules, and alert receivers that stall, redirect or answer garbage.

Warnings are errors in the suite: a statistic that overflows or turns NaN fails here before any verdict.
"""

from __future__ import annotations

import math
import socket
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import numpy as np
import pandas as pd
import pytest

from bastion.errors import ConfigError
from bastion.monitor.attacks import detect_attacks
from bastion.monitor.config import parse_monitoring_config
from bastion.monitor.drift import TestResult, compute_drift
from bastion.monitor.sinks._http import post

T0 = datetime(2026, 11, 1, tzinfo=UTC)


def _ref(n: int = 5000, seed: int = 0) -> pd.DataFrame:
    return pd.DataFrame({"x": np.random.default_rng(seed).normal(size=n)})


# ---------------------------------------------------------------------------- drift statistics


def test_infinities_are_kept_out_of_the_statistics_and_reported() -> None:
    cur = _ref(2000, 1)
    cur.loc[:59, "x"] = np.inf  # 3% of the window: inf - inf used to turn Wasserstein into NaN
    cur.loc[60:69, "x"] = -np.inf
    f = compute_drift(_ref(), cur).feature("x")
    assert f.drifted and any(r.startswith("infinite values 0.0% -> 3.5%") for r in f.reasons), f.reasons
    assert all(math.isfinite(t.statistic) for t in f.tests.values())
    assert f.n_current == 2000 - 70
    # a handful of infinities is no drift verdict of its own (the anomaly rule is there for single rows)
    few = _ref(2000, 1)
    few.loc[:2, "x"] = np.inf
    assert not compute_drift(_ref(), few).feature("x").drifted


def test_values_near_the_float_limit_do_not_overflow() -> None:
    cur = _ref(2000, 2)
    cur.loc[:999, "x"] = 1e308
    cur.loc[1000:1039, "x"] = -1e308  # the two ends span more than the float64 range
    f = compute_drift(_ref(), cur).feature("x")
    assert f.drifted
    assert all(math.isfinite(e) for e in f.histogram["edges"])
    # both sides huge: still computed, and the same data is no drift
    big = _ref(3000, 3) * 1e307
    assert not compute_drift(big, big.copy()).feature("x").drifted


def test_statistics_of_huge_values_equal_scipy() -> None:
    from scipy.stats import ks_2samp, wasserstein_distance

    from bastion.monitor.drift.numeric import numeric_statistics

    rng = np.random.default_rng(11)
    a = rng.normal(size=3000) * 1e150  # squares beyond 1e300: the rescaled path
    b = (rng.normal(size=2000) + 0.3) * 1e150
    s = numeric_statistics(a, b)
    assert s.ks_statistic == pytest.approx(ks_2samp(a, b).statistic, rel=1e-12)
    assert s.ks_p_value == pytest.approx(ks_2samp(a, b).pvalue, rel=1e-9)
    assert s.wasserstein == pytest.approx(wasserstein_distance(a, b), rel=1e-9)
    assert s.reference_std == pytest.approx(float(np.std(a)), rel=1e-9)
    assert s.wasserstein_norm == pytest.approx(wasserstein_distance(a, b) / float(np.std(a)), rel=1e-9)


def test_shift_confined_to_the_tail_is_drift() -> None:
    ref = _ref(5000, 4)
    cur = _ref(5000, 5)
    top = cur["x"] >= cur["x"].quantile(0.98)
    cur.loc[top, "x"] = 5.0  # 2% of rows pushed far out: deciles, KS and Wasserstein barely move
    f = compute_drift(ref, cur).feature("x")
    assert f.tests["psi"].statistic < 0.2 and f.tests["wasserstein"].statistic < 0.1
    assert f.drifted and any(r.startswith("upper tail: 2.0%") for r in f.reasons), f.reasons
    low = _ref(5000, 5)
    low.loc[low["x"] <= low["x"].quantile(0.02), "x"] = -5.0
    assert any(r.startswith("lower tail") for r in compute_drift(ref, low).feature("x").reasons)


def _cats(n: int, shares: dict[str, float], seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"c": rng.choice(list(shares), n, p=list(shares.values()))})


def test_surge_of_one_rare_category_is_drift() -> None:
    ref = _cats(5000, {"a": 0.60, "b": 0.34, "c": 0.05, "rare": 0.01}, 1)
    cur = _cats(5000, {"a": 0.58, "b": 0.33, "c": 0.05, "rare": 0.04}, 2)  # 1% -> 4%: JS and PSI barely move
    f = compute_drift(ref, cur).feature("c")
    assert f.tests["js"].statistic < 0.1 and f.tests["psi"].statistic < 0.2
    assert f.drifted and any(r.startswith("a category holding ") for r in f.reasons), f.reasons
    assert not any("rare" in r for r in f.reasons)  # the value itself is never in the text
    same = _cats(3000, {"a": 0.60, "b": 0.34, "c": 0.05, "rare": 0.01}, 3)
    assert compute_drift(ref, same).feature("c").reasons == ()


@pytest.mark.parametrize(("n_ref", "n_cur"), [(100, 20_000), (5000, 200), (5000, 50_000), (300, 10)])
def test_same_distribution_has_no_tail_reason(n_ref: int, n_cur: int) -> None:
    for seed in range(4):
        ref = _ref(n_ref, 10 + seed)
        cur = pd.DataFrame({"x": np.random.default_rng(100 + seed).normal(size=n_cur)})
        assert compute_drift(ref, cur).feature("x").reasons == ()


def test_a_statistic_that_did_not_compute_fails_closed() -> None:
    assert TestResult("wasserstein", math.nan).exceeds(0.1)
    assert TestResult("ks", 0.5, math.nan, "p_value").exceeds(0.05)
    assert not TestResult("ks", 0.5, None, "p_value").exceeds(0.05)  # no test at all: no verdict
    assert not TestResult("wasserstein", 0.05).exceeds(0.1)


@pytest.mark.parametrize(
    "drift",
    [
        {"thresholds": {"wasserstein": math.nan}},
        {"thresholds": {"wasserstein": math.inf}},
        {"thresholds": {"js": -1.0}},
        {"thresholds": {"ks": 1.5}},
        {"thresholds": {"chi2": 0.0}},
        {"columns": {"x": {"threshold": math.inf}}},
        {"alpha": math.nan},
    ],
)
def test_thresholds_that_switch_drift_off_are_refused(drift: dict[str, Any]) -> None:
    with pytest.raises(ConfigError, match="drift"):
        parse_monitoring_config({"drift": drift})


@pytest.mark.parametrize(
    "section",
    [{"attacks": {"extraction": {"volume_ratio": math.inf}}}, {"performance": {"floors": {"accuracy": math.nan}}}],
)
def test_non_finite_rule_settings_are_refused(section: dict[str, Any]) -> None:
    with pytest.raises(ConfigError, match="finite"):
        parse_monitoring_config(section)


def test_unusable_numeric_inputs_are_anomalies_not_crashes() -> None:
    from bastion.monitor.anomaly import fit_anomaly_model

    rng = np.random.default_rng(0)
    ref = pd.DataFrame({"x": rng.normal(size=2000), "y": rng.normal(size=2000), "c": rng.choice(["a", "b"], 2000)})
    am = fit_anomaly_model(ref)
    cur = ref.sample(200, random_state=1).reset_index(drop=True)
    cur["x"] = cur["x"].astype(object)
    cur.loc[:4, "x"] = [np.inf, -np.inf, np.nan, "abc", None]  # inf used to crash the forest; NaN passed as the median
    flags = am.flags(cur)
    assert flags[:5].all() and flags[5:].mean() < 0.1
    # where the reference itself has missing values, a missing input is ordinary; infinities there do not crash
    holey = ref.assign(x=ref["x"].where(rng.random(2000) > 0.05), y=ref["y"].where(rng.random(2000) > 0.01, np.inf))
    am2 = fit_anomaly_model(holey)
    assert not am2.flags(pd.DataFrame({"x": [np.nan], "y": [0.0], "c": ["a"]}))[0]
    assert am2.flags(pd.DataFrame({"x": [0.0], "y": [np.inf], "c": ["a"]}))[0]


# ---------------------------------------------------------------------------- attack patterns


def _rows(key: str, client: str, x1: np.ndarray, x2: np.ndarray, start: int = 0) -> pd.DataFrame:
    p = 1 / (1 + np.exp(-(x1 - 40) / 5))
    return pd.DataFrame(
        {
            "request_id": [f"{key}-{start + i}" for i in range(len(x1))],
            "ts": [T0 + timedelta(seconds=start + i) for i in range(len(x1))],
            "key_id": key,
            "client": client,
            "outcome": "ok",
            "in.x1": x1,
            "in.x2": x2,
            "out.label": (p > 0.5).astype(int),
            "out.proba": p,
        }
    )


def _ordinary(seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.concat(
        [_rows(f"key{i}", f"10.0.0.{i}", rng.normal(40, 10, 150).round(), rng.choice([20.0, 40.0, 60.0], 150))
         for i in range(8)],
        ignore_index=True,
    )


def test_probing_with_decoys_between_the_probes_is_found() -> None:
    rng = np.random.default_rng(7)
    probes = 40 + 0.05 * (-1.0) ** np.arange(30) * (1 + np.arange(30) / 100)  # a tight search across x1=40
    x1, x2 = [], []
    for p in probes:  # each probe followed by two random decoys: no two consecutive queries are close
        x1 += [p, rng.uniform(0, 100), rng.uniform(0, 100)]
        x2 += [40.0, rng.uniform(0, 100), rng.uniform(0, 100)]
    probe = _rows("prober", "7.7.7.7", np.array(x1), np.array(x2))
    found = detect_attacks(pd.concat([_ordinary(), probe], ignore_index=True), scales={"x1": 10.0, "x2": 20.0})
    assert [(f.rule, f.key_id) for f in found] == [("evasion_probing", "prober")]
    assert found[0].evidence["flips"] >= 3


def test_extraction_spread_over_keys_from_one_address_is_found() -> None:
    rng = np.random.default_rng(8)
    # ten fresh keys, each below min_queries (200), together sweeping the input space from one address
    thieves = [_rows(f"t{i}", "6.6.6.6", rng.uniform(0, 100, 190), rng.uniform(0, 100, 190), start=i * 190)
               for i in range(10)]
    found = detect_attacks(pd.concat([_ordinary(), *thieves], ignore_index=True))
    assert [(f.rule, f.client, f.key_id) for f in found] == [("extraction", "6.6.6.6", None)]
    assert found[0].evidence["keys"] == 10 and "spread over 10 keys" in found[0].message


def test_ordinary_traffic_behind_one_address_raises_nothing() -> None:
    nat = _ordinary(3).assign(client="10.9.9.9")  # eight ordinary keys behind one address, no history
    others = _ordinary(4).assign(key_id=lambda d: "o" + d["key_id"])
    assert detect_attacks(pd.concat([nat, others], ignore_index=True)) == []


# ---------------------------------------------------------------------------- hostile alert receivers


def _serve(handler: Callable[[socket.socket], None]) -> Iterator[str]:
    srv = socket.create_server(("127.0.0.1", 0))
    srv.settimeout(0.2)
    stop = threading.Event()

    def loop() -> None:
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
            except TimeoutError:
                continue
            threading.Thread(target=_handle, args=(conn,), daemon=True).start()

    def _handle(conn: socket.socket) -> None:
        with conn:
            conn.settimeout(10)
            try:
                conn.recv(65536)  # the request (small)
                handler(conn)
            except OSError:
                pass

    t = threading.Thread(target=loop, daemon=True)
    t.start()
    try:
        yield f"http://127.0.0.1:{srv.getsockname()[1]}/hook"
    finally:
        stop.set()
        t.join(2)
        srv.close()


@pytest.fixture
def recorder() -> Iterator[tuple[str, list[str]]]:
    got: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            got.append("GET " + self.path)
            self.send_response(200)
            self.end_headers()

        def do_POST(self) -> None:
            got.append("POST " + self.path)
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", got
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("code", [301, 302, 303, 307, 308])
def test_a_redirect_is_not_followed_nor_taken_for_delivery(code: int, recorder: tuple[str, list[str]]) -> None:
    elsewhere, got = recorder

    def redirect(conn: socket.socket) -> None:
        conn.sendall(f"HTTP/1.1 {code} Moved\r\nLocation: {elsewhere}/stolen\r\nContent-Length: 0\r\n\r\n".encode())

    for url in _serve(redirect):
        r = post(url, b"{}", {"X-Bastion-Signature": "sha256=00"}, timeout=3)
        assert not r.ok and not r.retryable and f"HTTP {code}" in r.error and "redirect" in r.error
    assert got == []  # the other host saw nothing (neither the alert nor its signature header)


def test_a_receiver_that_answers_byte_by_byte_is_cut_off_at_the_timeout() -> None:
    def drip(conn: socket.socket) -> None:
        for b in b"HTTP/1.1 200 OK\r\nX-Slow: " + b"a" * 200:  # each byte well under the socket timeout
            conn.sendall(bytes([b]))
            time.sleep(0.1)

    for url in _serve(drip):
        t = time.monotonic()
        r = post(url, b"{}", {}, timeout=1.0)
        took = time.monotonic() - t
        assert not r.ok and r.retryable and "within 1 s" in r.error
        assert took < 2.5, took


def test_a_huge_answer_is_not_read() -> None:
    def huge(conn: socket.socket) -> None:
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100000000000\r\n\r\n" + b"x" * 65536)
        time.sleep(3)  # and never the rest

    for url in _serve(huge):
        t = time.monotonic()
        assert post(url, b"{}", {}, timeout=2.0).ok
        assert time.monotonic() - t < 1.5


@pytest.mark.parametrize("answer", [b"garbage\r\n\r\n", b"HTTP/1.1 200 OK\r\n" + b"X: y\r\n" * 200 + b"\r\n"])
def test_a_malformed_answer_is_a_failed_attempt_not_an_exception(answer: bytes) -> None:
    def bad(conn: socket.socket) -> None:
        conn.sendall(answer)

    for url in _serve(bad):
        r = post(url, b"{}", {}, timeout=2.0)
        assert not r.ok and r.retryable and r.error


def test_crlf_in_model_or_rule_names_cannot_inject_mail_headers() -> None:
    from bastion.monitor.sinks.email import EmailSinkConfig, build_message

    cfg = EmailSinkConfig(host="127.0.0.1", sender="bastion@example.org", to=["oncall@example.org"], security="none")
    alert = {"severity": "critical", "model": "m:1\r\nBcc: evil@example.org", "rule": "r\nX-Evil: 1",
             "message": "drift", "id": "abc"}
    msg = build_message(alert, cfg)
    head = msg.as_bytes().split(b"\n\n", 1)[0]
    assert msg["Bcc"] is None and msg["X-Evil"] is None
    assert b"\nBcc:" not in head and b"\nX-Evil:" not in head


def test_alerts_never_carry_values_of_a_personal_data_column() -> None:
    import json

    from bastion.monitor.alerts import evaluate_alerts
    from bastion.monitor.config import AlertsConfig

    rng = np.random.default_rng(9)
    ref = pd.DataFrame({"email": rng.choice(["a@x.org", "b@x.org"], 2000), "x": rng.normal(size=2000)})
    canaries = [f"canary{i}@leak.example" for i in range(300)]
    cur = pd.DataFrame({"email": rng.choice(["a@x.org", *canaries], 2000), "x": rng.normal(size=2000) + 1})
    report = compute_drift(ref, cur)
    assert report.feature("email").drifted
    alerts = evaluate_alerts({"drift": report.to_dict()}, AlertsConfig(), model="m:1")
    assert alerts and "leak.example" not in json.dumps([a.to_dict() for a in alerts])
