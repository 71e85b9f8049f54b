"""Deterministic, clearly fictitious identities attached to the bundled Adult census rows, so the PII
stage of the demo has realistic work: names, SSNs, emails, phones, addresses, birth dates, MRNs, notes."""

from __future__ import annotations

import datetime as _dt

import numpy as np
import pandas as pd

__all__ = ["IDENTITY_COLUMNS", "attach_identities", "load_raw_demo_table"]

IDENTITY_COLUMNS = (
    "patient_name", "ssn", "email", "phone", "street_address", "zip", "date_of_birth", "mrn", "notes",
)  # fmt: skip

# The census was taken in 1994: birth dates are consistent with each row's age on this day.
REFERENCE_DATE = _dt.date(1994, 7, 1)

_MALE = (
    "James John Robert Michael William David Richard Joseph Thomas Charles Daniel Matthew Anthony Mark Paul "
    "Steven Andrew Kenneth Joshua Kevin Brian George Timothy Ronald Jason Edward Jeffrey Ryan Jacob Gary "
    "Carlos Luis Jose Miguel Juan Ahmed Omar Hassan Wei Jun Hiroshi Kenji Raj Arjun Vikram Pierre Lukas "
    "Jonas Mateo Diego Ivan Dmitri Kwame Chidi Tariq Andre Marco Giovanni Sven Lars"
).split()
_FEMALE = (
    "Mary Patricia Jennifer Linda Elizabeth Barbara Susan Jessica Sarah Karen Lisa Nancy Betty Margaret "
    "Sandra Ashley Kimberly Emily Donna Michelle Carol Amanda Melissa Deborah Stephanie Rebecca Laura "
    "Maria Carmen Lucia Sofia Fatima Aisha Leila Mei Yuki Sakura Priya Ananya Sunita Claire Amelie "
    "Hannah Lena Elena Olga Amara Ngozi Zainab Isabella Giulia Ingrid Astrid Chloe Camille Rosa"
).split()
_LAST = (
    "Smith Johnson Williams Brown Jones Garcia Miller Davis Rodriguez Martinez Hernandez Lopez Gonzalez "
    "Wilson Anderson Thomas Taylor Moore Jackson Martin Lee Perez Thompson Harris Sanchez Clark Ramirez "
    "Lewis Robinson Walker Young Allen Wright Scott Torres Nguyen Hill Flores Adams Nelson Baker Hall "
    "Rivera Campbell Mitchell Carter Roberts Kim Patel Shah Singh Chen Wang Li Zhang Tanaka Suzuki Sato "
    "Muller Schmidt Schneider Fischer Weber Dubois Moreau Laurent Rossi Russo Ferrari Kowalski Novak "
    "Ivanov Petrov Okafor Mensah Haddad Khalil Yilmaz Demir Larsen Johansson Silva Santos Costa"
).split()
_STREETS = (
    "Oak Maple Pine Cedar Elm Walnut Birch Willow Lake Hill Park Washington Lincoln Jefferson Madison "
    "Franklin River Spring Meadow Sunset Highland Forest Church Mill Valley Ridge Prospect Chestnut"
).split()
_SUFFIXES = ("Street", "Avenue", "Road", "Lane", "Drive", "Court", "Boulevard", "Place", "Way", "Terrace")
_CITIES = (
    ("Springfield", "IL"), ("Riverton", "WY"), ("Fairview", "OR"), ("Madison", "WI"), ("Georgetown", "TX"),
    ("Clinton", "MA"), ("Salem", "NH"), ("Greenville", "SC"), ("Franklin", "TN"), ("Bristol", "CT"),
    ("Ashland", "KY"), ("Dover", "DE"), ("Milford", "NJ"), ("Oxford", "MS"), ("Burlington", "VT"),
)  # fmt: skip
_AREA_CODES = np.array([201, 212, 213, 305, 312, 404, 415, 503, 512, 602, 617, 702, 713, 808, 917])
_DOMAINS = np.array(["example.com", "example.org", "example.net"])
_NOTES = (
    "Patient {name} called from {phone} asking about the lab results; prefers email at {email}.",
    "{first} reported mild back pain after work. Follow-up booked; contact {phone}.",
    "Spoke with {name} (DOB {dob}) about the insurance claim. SSN on file ends in {ssn4}.",
    "Mailed the summary to {address}. {first} confirmed the address by phone.",
    "Mr./Ms. {last} missed the appointment; left a voicemail at {phone}.",
    "Discussed medication changes with {name}. Email copy sent to {email}.",
    "{name} lives at {address} and works as {occupation}. No complaints today.",
)


def attach_identities(df: pd.DataFrame, *, seed: int = 0) -> pd.DataFrame:
    """Add fictitious identity columns (`IDENTITY_COLUMNS`) to Adult rows; same seed, same identities.

    Names come from small multicultural lists (first names by the row's ``sex``), SSNs follow the
    issuance rules, emails use the reserved ``example.*`` domains, phones the fictional 555-01xx range,
    and birth dates agree with ``age`` on the census day (1994-07-01).
    """
    n = len(df)
    rng = np.random.default_rng(seed)
    out = df.copy()
    sex = out["sex"].astype(str).str.strip().str.lower().to_numpy() if "sex" in out else np.full(n, "")
    male = np.array(_MALE)[rng.integers(0, len(_MALE), n)]
    female = np.array(_FEMALE)[rng.integers(0, len(_FEMALE), n)]
    first = np.where(sex == "female", female, male)
    last = np.array(_LAST)[rng.integers(0, len(_LAST), n)]
    name = pd.Series(first, dtype=object) + " " + pd.Series(last, dtype=object)

    area = rng.integers(1, 900, n)
    area = np.where(area == 666, 665, area)
    group = rng.integers(1, 100, n)
    serial = rng.integers(1, 10000, n)
    ssn = pd.Series([f"{a:03d}-{g:02d}-{s:04d}" for a, g, s in zip(area, group, serial, strict=True)], dtype=object)

    tag = rng.integers(1, 100, n)
    email = (
        pd.Series(first, dtype=object).str.lower() + "." + pd.Series(last, dtype=object).str.lower()
        + pd.Series(tag.astype(str), dtype=object) + "@" + pd.Series(_DOMAINS[rng.integers(0, 3, n)], dtype=object)
    )
    ac = _AREA_CODES[rng.integers(0, len(_AREA_CODES), n)]
    line = rng.integers(100, 200, n)
    phone = pd.Series([f"({a}) 555-0{x:03d}" for a, x in zip(ac, line, strict=True)], dtype=object)

    num = rng.integers(1, 9999, n)
    street = np.array(_STREETS)[rng.integers(0, len(_STREETS), n)]
    suffix = np.array(_SUFFIXES)[rng.integers(0, len(_SUFFIXES), n)]
    city_idx = rng.integers(0, len(_CITIES), n)
    zips = rng.integers(1000, 99951, n)
    zip_s = pd.Series([f"{z:05d}" for z in zips], dtype=object)
    address = pd.Series(
        [
            f"{a} {s} {x}, {_CITIES[c][0]}, {_CITIES[c][1]} {z}"
            for a, s, x, c, z in zip(num, street, suffix, city_idx, zip_s, strict=True)
        ],
        dtype=object,
    )

    age = pd.to_numeric(out["age"], errors="coerce").fillna(40).astype(int).to_numpy() if "age" in out else 40
    days_back = np.asarray(age) * 365.25 + rng.integers(0, 365, n)
    ref = np.datetime64(REFERENCE_DATE.isoformat())
    dob = (ref - days_back.astype("timedelta64[D]")).astype("datetime64[D]").astype(str)

    mrn = pd.Series([f"MRN-{v:08d}" for v in rng.permutation(n) + 10_000_000 // 7], dtype=object)

    occupation = (
        out["occupation"].fillna("unknown").astype(str).str.lower().str.replace("-", " ").to_numpy()
        if "occupation" in out
        else np.full(n, "a clerk")
    )
    which = rng.integers(0, len(_NOTES), n)
    notes = [
        _NOTES[w].format(
            name=name.iat[i], first=first[i], last=last[i], phone=phone.iat[i], email=email.iat[i],
            dob=dob[i], ssn4=ssn.iat[i][-4:], address=address.iat[i], occupation=occupation[i],
        )
        for i, w in enumerate(which)
    ]

    out["patient_name"] = name.to_numpy()
    out["ssn"] = ssn.to_numpy()
    out["email"] = email.to_numpy()
    out["phone"] = phone.to_numpy()
    out["street_address"] = address.to_numpy()
    out["zip"] = zip_s.to_numpy()
    out["date_of_birth"] = dob
    out["mrn"] = mrn.to_numpy()
    out["notes"] = notes
    return out


def load_raw_demo_table(rows: int | None = None, *, seed: int = 0) -> pd.DataFrame:
    """The bundled Adult training rows (all, or the first ``rows``) with identities attached."""
    from bastion.demo.data import load_adult

    return attach_identities(load_adult("train", rows=rows), seed=seed)
