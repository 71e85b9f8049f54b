"""A deterministic, labelled PII corpus: tables with neutral (or real-ish) column names, decoy columns,
and free-text notes with PII at known offsets, in several locales. Used by the tests and bench/pii."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import pandas as pd
import phonenumbers

# ~80% of names come from common lists, ~20% from names the bundled dictionaries do not hold.
COMMON_FIRST = (
    "James Mary Robert Patricia Michael Jennifer David Linda William Elizabeth Maria Carlos Sofia Lukas "
    "Amelie Jonas Chloe Camille Mateo Valentina Giulia Alessandro Wojciech Agnieszka Katarzyna Piotr Anh "
    "Minh Priya Arjun Rohan Wei Mei Jun Hiroshi Yuki Ingrid Astrid Sven Olga Ivan Fatima Aisha Omar Hassan "
    "Leila Reza Yusuf Elif Aylin Mehmet Siddharth Lakshmi Sakura Eero Aino Wiebke Ximena Itzel Amara "
    "Bogdan Dagny Jae Soren Margaret Thomas Susan Daniel Karen Joseph Nancy Pierre Claire Hannah Elena"
).split()
RARE_FIRST = (
    "Oluwaseun Chiamaka Thandiwe Nkosinathi Xiaoming Yuxuan Haruto Radomir Tjarda Kaimana Keoni Anahera "
    "Bjarke Signy Kofi Abebe Tigist Folake Zainab Parisa Dariush Emre Thao Kwame Chidi Tariq"
).split()
COMMON_LAST = (
    "Smith Johnson Williams Garcia Miller Davis Rodriguez Martinez Hernandez Lopez Wilson Anderson Taylor "
    "Moore Thompson Nguyen Tran Patel Sharma Gupta Chen Wang Tanaka Suzuki Larsen Johansson Muller Schmidt "
    "Dubois Moreau Rossi Ferrari Nowak Adeyemi Okonkwo Venkataraman Iyer Zhao Xu Takahashi Watanabe "
    "Nakamura Wisniewski Lehtonen Korhonen Brouwer Visser Haugen Park Choi Okafor Eze Haddad Khalil "
    "Hosseini Demir Becker Fischer Lefebvre Fontaine Romano Esposito Kowalski Jensen"
).split()
RARE_LAST = (
    "Mthembu Dlamini Raghunathan Kowalczyk Quispe Mamani Kahananui Ngata Solberg Mensah Asante Tesfaye "
    "Bekele Rahimi Yilmaz Ivanova Petrov Okoro Farouk Mansour"
).split()
STREETS = "Oak Maple Pine Cedar Elm Walnut Willow Lake Hill Park Washington Lincoln Sunset Highland Forest".split()
US_SUFFIX = ("Street", "Avenue", "Road", "Lane", "Drive", "Court", "Boulevard", "Place", "Way")
US_CITIES = (("Springfield", "IL"), ("Fairview", "OR"), ("Madison", "WI"), ("Greenville", "SC"), ("Dover", "DE"))
UK_STREETS = ("Baker Street", "High Street", "Station Road", "Church Lane", "Victoria Road", "Mill Lane")
DE_STREETS = ("Hauptstraße", "Bahnhofstraße", "Gartenweg", "Schillerstraße", "Lindenallee", "Marktplatz")
DE_CITIES = ("Berlin", "Hamburg", "München", "Köln", "Leipzig")
FR_STREETS = ("rue de la Paix", "avenue Victor Hugo", "boulevard Saint-Michel", "rue du Moulin", "place Bellecour")
FR_CITIES = ("Paris", "Lyon", "Marseille", "Toulouse", "Nantes")
CITIES_DECOY = (
    "Springfield Riverside Fairview Franklin Greenville Bristol Clinton Georgetown Salem Madison Arlington "
    "Ashland Burlington Chester Dayton Dover Hudson Kingston Lexington Milford Newport Oxford Plymouth "
    "Richmond Troy Winchester Auburn Camden Danville Eugene"
).split()
PRODUCTS = ("Widget Pro", "Gadget Max", "Turbo Blender", "Eco Kettle", "Smart Lamp", "Desk Fan", "Air Purifier")
STATUS = ("active", "inactive", "pending", "closed")
COLORS = ("Red", "Green", "Brown", "White", "Black", "Gray", "Blue")
REVIEWS = (
    "The blender works well but is louder than expected on the highest setting.",
    "Delivery was quick and the packaging kept everything safe during transport.",
    "Battery life is shorter than advertised, around six hours with normal use.",
    "Great value for the price; the lid fits tightly and cleaning is easy.",
    "Stopped working after two weeks, replacement part was sent under warranty.",
    "Setup took ten minutes and the instructions were clear and well illustrated.",
)

ENTITIES = (
    "PERSON", "EMAIL", "PHONE", "US_SSN", "CREDIT_CARD", "IBAN", "IP_ADDRESS", "STREET_ADDRESS",
    "DATE_OF_BIRTH", "US_ZIP", "MEDICAL_RECORD_NUMBER", "URL",
)  # fmt: skip


@dataclass
class Corpus:
    """A generated table with its labels.

    ``column_labels`` maps each column to its entity, ``"TEXT"`` (free text holding PII) or None (no PII);
    ``spans`` maps each free-text column to per-row lists of ``(entity, start, end)``.
    """

    frame: pd.DataFrame
    column_labels: dict[str, str | None]
    spans: dict[str, list[list[tuple[str, int, int]]]] = field(default_factory=dict)


class _Gen:
    def __init__(self, seed: int) -> None:
        self.r = random.Random(seed)

    def first(self) -> str:
        return self.r.choice(RARE_FIRST) if self.r.random() < 0.2 else self.r.choice(COMMON_FIRST)

    def last(self) -> str:
        return self.r.choice(RARE_LAST) if self.r.random() < 0.2 else self.r.choice(COMMON_LAST)

    def name(self) -> str:
        return f"{self.first()} {self.last()}"

    def email(self) -> str:
        dom = self.r.choice(("example.com", "mail.example.org", "corp.example.net", "example.co.uk", "example.de"))
        sep = self.r.choice((".", "_", ""))
        return f"{self.first().lower()}{sep}{self.last().lower()}{self.r.randint(1, 99)}@{dom}"

    def phone(self) -> str:
        while True:
            kind = self.r.randrange(5)
            if kind == 0:
                s = f"({self.r.choice((212, 312, 415, 617, 713))}) 555-0{self.r.randint(100, 199)}"
            elif kind == 1:
                s = f"+1 {self.r.choice((202, 303, 404, 503, 602))}-555-0{self.r.randint(100, 199)}"
            elif kind == 2:
                s = f"+44 20 7946 0{self.r.randint(100, 999)}"
            elif kind == 3:
                s = f"+49 30 {self.r.randint(1000000, 99999999)}"
            else:
                s = "+33 1 " + " ".join(str(self.r.randint(10, 99)) for _ in range(4))
            region = None if s.startswith("+") else "US"
            if phonenumbers.is_valid_number(phonenumbers.parse(s, region)):
                return s

    def ssn(self) -> str:
        area = self.r.randint(1, 899)
        area = 667 if area == 666 else area
        return f"{area:03d}-{self.r.randint(1, 99):02d}-{self.r.randint(1, 9999):04d}"

    def lot(self) -> str:  # decoy: area 9xx is never issued
        return f"{self.r.randint(900, 999)}-{self.r.randint(10, 99)}-{self.r.randint(1000, 9999)}"

    def _luhn_complete(self, prefix: str, length: int) -> str:
        body = prefix + "".join(str(self.r.randrange(10)) for _ in range(length - len(prefix) - 1))
        total = 0
        for i, ch in enumerate(reversed(body)):
            d = int(ch)
            if i % 2 == 0:
                d *= 2
                d = d - 9 if d > 9 else d
            total += d
        return body + str((10 - total % 10) % 10)

    def card(self) -> str:
        kind = self.r.randrange(5)
        if kind == 0:
            num = self._luhn_complete("4", 16)
        elif kind == 1:
            num = self._luhn_complete(str(self.r.randint(51, 55)), 16)
        elif kind == 2:
            num = self._luhn_complete(str(self.r.randint(2221, 2720)), 16)
        elif kind == 3:
            num = self._luhn_complete(self.r.choice(("34", "37")), 15)
        else:
            num = self._luhn_complete("6011", 16)
        if len(num) == 15:
            return self.r.choice((num, f"{num[:4]} {num[4:10]} {num[10:]}"))
        sep = self.r.choice(("", " ", "-"))
        return sep.join(num[i : i + 4] for i in range(0, 16, 4))

    def bad_card(self) -> str:  # decoy: card-like digits failing Luhn
        good = self._luhn_complete("4", 16)
        return good[:-1] + str((int(good[-1]) + self.r.randint(1, 9)) % 10)

    def iban(self) -> str:
        country, blen = self.r.choice((("DE", 18), ("GB", 18), ("FR", 23), ("ES", 20), ("IT", 23), ("NL", 14)))
        if country == "GB":
            bban = self.r.choice(("NWBK", "BARC", "HSBC")) + "".join(str(self.r.randrange(10)) for _ in range(14))
        elif country == "NL":
            bban = self.r.choice(("ABNA", "RABO", "INGB")) + "".join(str(self.r.randrange(10)) for _ in range(10))
        elif country == "IT":
            bban = "X" + "".join(str(self.r.randrange(10)) for _ in range(22))
        else:
            bban = "".join(str(self.r.randrange(10)) for _ in range(blen))
        num = "".join(str(int(ch, 36)) for ch in bban + country + "00")
        check = 98 - int(num) % 97
        raw = f"{country}{check:02d}{bban}"
        return " ".join(raw[i : i + 4] for i in range(0, len(raw), 4)) if self.r.random() < 0.5 else raw

    def ip(self) -> str:
        if self.r.random() < 0.2:
            return f"2001:db8:{self.r.randint(0, 65535):x}::{self.r.randint(1, 65535):x}"
        return ".".join(str(self.r.randint(1, 254)) for _ in range(4))

    def version(self) -> str:  # decoy
        return f"{self.r.randint(1, 4)}.{self.r.randint(0, 20)}.{self.r.randint(0, 9)}.{self.r.randint(0, 30)}"

    def address(self) -> str:
        k = self.r.randrange(4)
        if k == 0:
            city, st = self.r.choice(US_CITIES)
            return (
                f"{self.r.randint(1, 9999)} {self.r.choice(STREETS)} {self.r.choice(US_SUFFIX)}, "
                f"{city}, {st} {self.r.randint(1000, 99950):05d}"
            )
        if k == 1:
            return f"{self.r.randint(1, 300)} {self.r.choice(UK_STREETS)}, London NW1 {self.r.randint(1, 9)}XE"
        if k == 2:
            street, num, plz = self.r.choice(DE_STREETS), self.r.randint(1, 200), self.r.randint(10000, 99999)
            return f"{street} {num}, {plz} {self.r.choice(DE_CITIES)}"
        num, street, cp = self.r.randint(1, 200), self.r.choice(FR_STREETS), self.r.randint(10000, 95999)
        return f"{num} {street}, {cp} {self.r.choice(FR_CITIES)}"

    def dob(self) -> str:
        return f"{self.r.randint(1935, 2004)}-{self.r.randint(1, 12):02d}-{self.r.randint(1, 28):02d}"

    def recent_date(self) -> str:  # decoy
        return f"{self.r.randint(2019, 2025)}-{self.r.randint(1, 12):02d}-{self.r.randint(1, 28):02d}"

    def zip(self) -> str:
        return f"{self.r.randint(1000, 99950):05d}"

    def mrn(self, neutral: bool) -> str:
        if neutral:
            return self.r.choice(("MRN-", "MRN", "MR-")) + f"{self.r.randint(0, 99999999):08d}"
        return f"{self.r.randint(0, 9999999):07d}"

    def url(self) -> str:
        host = self.r.choice(("www.example.com", "portal.example.org", "example.net", "shop.example.co.uk"))
        path = self.r.choice(("/profile/", "/u/", "/patients/", "/account?id="))
        return f"https://{host}{path}{self.r.randint(1000, 999999)}"

    def order(self) -> str:  # decoy: 10 digits that a phone parser accepts
        return str(self.r.randint(2_000_000_000, 9_999_999_999))

    def sku(self) -> str:
        return f"SKU-{self.r.choice('ABCDEFGH')}{self.r.choice('KLMNPQRS')}-{self.r.randint(10000, 99999)}"


# (neutral name, real-ish name, label, generator)
_COLUMNS: tuple[tuple[str, str | None, str], ...] = (
    ("full_name", "PERSON", "name"),
    ("first_name", "PERSON", "first"),
    ("last_name", "PERSON", "last"),
    ("email", "EMAIL", "email"),
    ("phone", "PHONE", "phone"),
    ("ssn", "US_SSN", "ssn"),
    ("card_number", "CREDIT_CARD", "card"),
    ("iban", "IBAN", "iban"),
    ("ip_address", "IP_ADDRESS", "ip"),
    ("home_address", "STREET_ADDRESS", "address"),
    ("date_of_birth", "DATE_OF_BIRTH", "dob"),
    ("zip_code", "US_ZIP", "zip"),
    ("mrn", "MEDICAL_RECORD_NUMBER", "mrn"),
    ("profile_url", "URL", "url"),
    ("order_number", None, "order"),
    ("sku", None, "sku"),
    ("reference_digits", None, "bad_card"),
    ("order_date", None, "recent_date"),
    ("app_version", None, "version"),
    ("lot_number", None, "lot"),
    ("status", None, "status"),
    ("color", None, "color"),
    ("city", None, "city"),
    ("product", None, "product"),
    ("quantity", None, "quantity"),
    ("amount", None, "amount"),
    ("weight_kg", None, "weight"),
    ("is_member", None, "flag"),
    ("review", None, "review"),
    ("notes", "TEXT", "notes"),
)


def make_table(rows: int = 500, *, seed: int = 7, neutral: bool = True) -> Corpus:
    """The labelled table; neutral=True names columns ``col_1``... so only values can tell."""
    g = _Gen(seed)
    data: dict[str, list[object]] = {}
    labels: dict[str, str | None] = {}
    spans: dict[str, list[list[tuple[str, int, int]]]] = {}
    for i, (real, label, kind) in enumerate(_COLUMNS, start=1):
        col = f"col_{i}" if neutral else real
        labels[col] = label
        if kind == "notes":
            texts, gold = [], []
            for _ in range(rows):
                t, s = make_note(g)
                texts.append(t)
                gold.append(s)
            data[col] = texts
            spans[col] = gold
            continue
        data[col] = [_value(g, kind, neutral) for _ in range(rows)]
    frame = pd.DataFrame(data)
    for col, (_, _, kind) in zip(frame.columns, _COLUMNS, strict=True):
        if kind in ("quantity", "amount"):
            frame[col] = frame[col].astype("int64")
        elif kind == "weight":
            frame[col] = frame[col].astype("float64")
        elif kind == "flag":
            frame[col] = frame[col].astype(bool)
    return Corpus(frame, labels, spans)


def _value(g: _Gen, kind: str, neutral: bool) -> object:
    r = g.r
    simple = {
        "name": g.name, "first": g.first, "last": g.last, "email": g.email, "phone": g.phone, "ssn": g.ssn,
        "card": g.card, "iban": g.iban, "ip": g.ip, "address": g.address, "dob": g.dob, "zip": g.zip,
        "url": g.url, "order": g.order, "sku": g.sku, "bad_card": g.bad_card, "recent_date": g.recent_date,
        "version": g.version, "lot": g.lot,
    }  # fmt: skip
    if kind in simple:
        return simple[kind]()
    if kind == "mrn":
        return g.mrn(neutral)
    if kind == "status":
        return r.choice(STATUS)
    if kind == "color":
        return r.choice(COLORS)
    if kind == "city":
        return r.choice(CITIES_DECOY)
    if kind == "product":
        return f"{r.choice(PRODUCTS)} {r.randint(100, 3000)}"
    if kind == "quantity":
        return r.randint(1, 500)
    if kind == "amount":
        return r.randint(10000, 99999)
    if kind == "weight":
        return round(r.uniform(40, 120), 1)
    if kind == "flag":
        return r.random() < 0.5
    if kind == "review":
        return r.choice(REVIEWS)
    raise ValueError(kind)


# Note templates: text pieces and (entity or None, generator) slots. A None entity is a decoy slot.
_TEMPLATES: tuple[tuple[object, ...], ...] = (
    ("Patient ", ("PERSON", "name"), " called from ", ("PHONE", "phone"), " about the lab results."),
    ("Spoke with ", ("PERSON", "name"), "; email copy sent to ", ("EMAIL", "email"), " today."),
    (("PERSON", "first"), " reported back pain after the visit on ", (None, "recent_date"), "."),
    (
        "Mr. ",
        ("PERSON", "rare_last"),
        " was born on ",
        ("DATE_OF_BIRTH", "dob"),
        " and lives at ",
        ("STREET_ADDRESS", "address"),
        ".",
    ),
    ("Refund to IBAN ", ("IBAN", "iban"), " for order ", (None, "order"), " approved by the team."),
    ("Card ", ("CREDIT_CARD", "card"), " was declined; reference ", (None, "bad_card"), " retried."),
    ("SSN ", ("US_SSN", "ssn"), " verified for ", ("PERSON", "name"), "; lot ", (None, "lot"), " shipped."),
    ("Login from IP ", ("IP_ADDRESS", "ip"), " after upgrading to version ", (None, "version"), "."),
    ("Chart ", ("MEDICAL_RECORD_NUMBER", "mrn_text"), " updated, see ", ("URL", "url"), " for details."),
    (
        "Dr. ",
        ("PERSON", "rare_name"),
        " reviewed the scan with ",
        ("PERSON", "name"),
        " on ",
        (None, "recent_date"),
        ".",
    ),
    ("Mailing zip code ", ("US_ZIP", "zip"), " confirmed; item ", (None, "sku"), " sent."),
    ("Please contact ", ("PERSON", "name"), " at ", ("PHONE", "phone"), " or ", ("EMAIL", "email"), "."),
)


def make_note(g: _Gen) -> tuple[str, list[tuple[str, int, int]]]:
    """One note of one to three templates, and its gold spans."""
    parts: list[str] = []
    gold: list[tuple[str, int, int]] = []
    pos = 0
    for k in range(g.r.randint(1, 3)):
        if k:
            parts.append(" ")
            pos += 1
        for piece in g.r.choice(_TEMPLATES):
            if isinstance(piece, str):
                parts.append(piece)
                pos += len(piece)
                continue
            entity, kind = piece  # type: ignore[misc]
            value = _note_value(g, kind)
            if entity is not None:
                gold.append((entity, pos, pos + len(value)))
            parts.append(value)
            pos += len(value)
    return "".join(parts), gold


def _note_value(g: _Gen, kind: str) -> str:
    if kind == "rare_last":
        return g.r.choice(RARE_LAST + COMMON_LAST[:10])
    if kind == "rare_name":
        return f"{g.r.choice(RARE_FIRST)} {g.r.choice(RARE_LAST)}"
    if kind == "mrn_text":
        return f"MRN {g.r.randint(0, 99999999):08d}"
    return str(_value(g, kind, True))


def span_f1(
    gold: list[list[tuple[str, int, int]]], pred: list[list[tuple[str, int, int]]]
) -> dict[str, dict[str, float]]:
    """Per-entity precision/recall/F1; a prediction matches a gold span of the same entity that it
    overlaps by at least half of the gold span's length."""
    stats: dict[str, list[int]] = {}
    for g_row, p_row in zip(gold, pred, strict=True):
        used: set[int] = set()
        for ent, s, e in p_row:
            hit = None
            for j, (ge, gs, gend) in enumerate(g_row):
                if j not in used and ge == ent and min(e, gend) - max(s, gs) >= 0.5 * (gend - gs):
                    hit = j
                    break
            st = stats.setdefault(ent, [0, 0, 0])
            if hit is None:
                st[1] += 1
            else:
                used.add(hit)
                st[0] += 1
        for j, (ge, _, _) in enumerate(g_row):
            if j not in used:
                stats.setdefault(ge, [0, 0, 0])[2] += 1
    out: dict[str, dict[str, float]] = {}
    tp_all = fp_all = fn_all = 0
    for ent, (tp, fp, fn) in sorted(stats.items()):
        out[ent] = _prf(tp, fp, fn)
        tp_all, fp_all, fn_all = tp_all + tp, fp_all + fp, fn_all + fn
    out["OVERALL"] = _prf(tp_all, fp_all, fn_all)
    return out


def column_scores(labels: dict[str, str | None], predicted: dict[str, str | None]) -> dict[str, dict[str, float]]:
    """Per-entity column-level precision/recall/F1 (``"TEXT"`` counts as a label too), plus the
    number of non-PII columns flagged."""
    ents = sorted({v for v in labels.values() if v} | {v for v in predicted.values() if v})
    out: dict[str, dict[str, float]] = {}
    for ent in ents:
        tp = sum(1 for c in labels if labels[c] == ent and predicted.get(c) == ent)
        fp = sum(1 for c in labels if labels[c] != ent and predicted.get(c) == ent)
        fn = sum(1 for c in labels if labels[c] == ent and predicted.get(c) != ent)
        out[ent] = _prf(tp, fp, fn)
    non_pii = [c for c in labels if labels[c] is None]
    out["NON_PII"] = {
        "columns": float(len(non_pii)),
        "flagged": float(sum(1 for c in non_pii if predicted.get(c))),
    }
    return out


def _prf(tp: int, fp: int, fn: int) -> dict[str, float]:
    p = tp / (tp + fp) if tp + fp else 1.0
    r = tp / (tp + fn) if tp + fn else 1.0
    f = 2 * p * r / (p + r) if p + r else 0.0
    return {"precision": p, "recall": r, "f1": f, "tp": float(tp), "fp": float(fp), "fn": float(fn)}
