"""Fourth PII corpus: names no dictionary holds, in note styles no other corpus uses.

Generator: hand-written here, no library. Names are built from syllables (Latin with and without
diacritics, and five other scripts: Han, Cyrillic, Greek, Arabic, Devanagari), so no name is in any list
Bastion bundles or any other corpus draws from; surnames carry particles (te, ter, van der, de la, di, von,
bin, al-, O', Mc, d'), hyphens and apostrophes. Note styles: discharge summaries with "SURNAME, Given"
headers, referral letters, nursing handovers, e-mails, MDT attendance lists, signatures ("— J. Doe, RN"),
and notes in German, Spanish, French, Italian and Dutch. PII-free notes carry traps: drug names, eponymous
diseases, place and facility names ("St. Mary's Hospital"), ALL-CAPS headings.

This corpus is for REPORTING only: Bastion's rules are developed on unit-test sentences and heldout.py,
never on this file. Usage (Bastion's venv):
    PYTHONPATH=src python bench/pii/fourthcorpus.py [--rows 2000] [--seed 8675309]
Writes bench/pii/work/fourth_*.json (git-ignored) and prints the figures.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import random
import sys
import time
from pathlib import Path
from typing import Any

import pandas as pd

HERE = Path(__file__).resolve().parent
WORK = HERE / "work"

ONSETS = ("b", "br", "d", "dr", "f", "g", "gr", "h", "j", "k", "kl", "l", "m", "n", "p", "pr", "r", "s", "st",
          "t", "tr", "v", "w", "z", "ch", "sh", "th", "")  # fmt: skip
VOWELS = ("a", "e", "i", "o", "u", "ai", "ou", "ie", "ea", "y")
VOWELS_DIA = ("á", "é", "ø", "ü", "ö", "å", "í", "ó", "ë", "ã")
ONSETS_DIA = ("ç", "ñ", "ł", "ș", "ž", "č", "ř")
CODAS = ("", "", "n", "r", "l", "s", "m", "k", "th", "nd", "rt", "x", "v")
PARTICLES = ("te", "ter", "van der", "van", "de la", "de", "di", "von", "bin", "da", "dos")
PREFIXED = ("O'", "Mc", "d'", "al-", "Mac")

# syllables of other scripts (each a plausible-looking, dictionary-free sequence)
HAN_FAMILY = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"
HAN_GIVEN = "伟芳娜秀敏静丽强磊军洋勇艳杰娟涛明超霞平刚桂英华玉兰"
CYR = ("ка", "ро", "ли", "на", "ев", "ов", "ми", "ла", "ст", "ря", "бо", "да", "ше", "ню", "го", "зи", "та")
GREEK = ("κω", "στα", "ντί", "νος", "μα", "ρί", "λε", "ξαν", "δρα", "πα", "νά", "γι", "ώρ", "γος", "θε")
ARABIC = ("مح", "مد", "فا", "طم", "ة", "عل", "ي", "حس", "ن", "خا", "لد", "يو", "سف", "كر", "يم")
DEVA = ("रा", "जे", "श", "कु", "मा", "र", "सु", "नी", "ता", "वि", "जय", "प्र", "का", "श", "दे", "वी")

KIN = ("wife", "husband", "daughter", "son", "mother", "father", "sister", "brother", "partner", "niece", "carer")
ROLES = ("nurse", "Dr", "Prof.", "Sr.", "pastor", "attending", "GP", "physio", "midwife", "pharmacist", "SN")
CRED = ("RN", "MD", "MBBS", "FRCP", "RGN", "PhD", "DO")

CLEAN_EN = (
    "Known Sjögren syndrome, on hydroxychloroquine.", "Raynaud phenomenon in both hands.",
    "Wilson's disease excluded (caeruloplasmin normal).", "Barrett's oesophagus on surveillance.",
    "Started Xarelto 20 mg; Keppra continued.", "Eliquis held before the procedure.",
    "Transferred from St. Mary's Hospital on Sunday.", "Follow-up at Karolinska Institute arranged.",
    "Seen previously at Addenbrooke's.", "Holiday in Valencia last month, no travel illness.",
    "Kawasaki disease as a child.", "Tourette syndrome, stable.", "Meckel diverticulum resected 2009.",
    "Ozempic stopped because of nausea.", "MEDICATIONS: ASPIRIN 75 MG, RAMIPRIL 5 MG.",
    "PLAN: REVIEW IN CLINIC.", "Hashimoto's thyroiditis, on levothyroxine.", "Rotterdam criteria met (PCOS).",
    "Heberden's nodes noted.", "Parkinson's disease, tremor controlled.", "Crohn's disease, on infliximab.",
    "Lives in Lyon, works as a teacher.", "Review by Cardiology on Thursday.", "Allergic to Penicillin.",
    "Discharged to Hillcrest Nursing Home.", "Ventolin inhaler as required.", "Marfan features: none.",
    "Holter monitor booked.", "Denies chest pain. Mobilising independently.", "Admitted via A&E at 02:10.",
)  # fmt: skip
CLEAN_OTHER = (
    "Übernahme von der Intensivstation, Zustand stabil.", "Morbus Bechterew bekannt, Therapie mit Humira.",
    "Ingreso desde Urgencias del Hospital La Paz.", "Enfermedad de Addison en tratamiento.",
    "Transfert depuis l'Hôpital Saint-Louis.", "Maladie de Basedow, sous traitement.",
    "Ricovero presso l'Ospedale San Raffaele.", "Morbo di Alzheimer iniziale.",
    "Opname via de Spoedeisende Hulp van het Erasmus MC.", "Ziekte van Hodgkin in de voorgeschiedenis.",
)  # fmt: skip


class Fourth:
    """A table (patient, e-mail, phone, birth date, record number, notes) with labelled note spans."""

    def __init__(self, rows: int, seed: int) -> None:
        self.r = random.Random(seed)
        self.rows = rows

    # --- names -------------------------------------------------------------------------------------------
    def _syl(self, n: int, dia: bool) -> str:
        r = self.r
        out = ""
        for i in range(n):
            v = r.choice(VOWELS_DIA) if dia and r.random() < 0.3 else r.choice(VOWELS)
            on = r.choice(ONSETS_DIA) if dia and i and r.random() < 0.2 else r.choice(ONSETS)
            out += on + v + (r.choice(CODAS) if i == n - 1 else "")
        return out.capitalize()

    def given(self) -> str:
        return self._syl(self.r.randint(2, 3), self.r.random() < 0.3)

    def surname(self) -> str:
        r = self.r
        base = self._syl(r.randint(2, 3), r.random() < 0.3)
        k = r.random()
        if k < 0.25:
            return f"{r.choice(PARTICLES)} {base}"
        if k < 0.38:
            return r.choice(PREFIXED) + base
        if k < 0.48:
            return f"{base}-{self._syl(2, False)}"
        return base

    def script_name(self) -> tuple[str, str]:
        """(script, full name) in a non-Latin script."""
        r = self.r
        s = r.choice(("han", "cyr", "greek", "arabic", "deva"))
        if s == "han":
            return s, r.choice(HAN_FAMILY) + "".join(r.sample(HAN_GIVEN, r.randint(1, 2)))
        table = {"cyr": CYR, "greek": GREEK, "arabic": ARABIC, "deva": DEVA}[s]

        def word() -> str:
            w = "".join(r.choice(table) for _ in range(r.randint(2, 3)))
            return w[:1].upper() + w[1:]

        return s, f"{word()} {word()}"

    @staticmethod
    def cap_surname(last: str) -> str:
        return last[:1].upper() + last[1:]

    def phone(self) -> str:
        r = self.r
        k = r.randint(0, 3)
        if k == 0:
            return f"({r.choice((212, 415, 617, 303))}) {r.randint(200, 999)}-{r.randint(0, 9999):04d}"
        if k == 1:
            return f"07{r.randint(700, 999)} {r.randint(100000, 999999)}"
        if k == 2:
            return f"+49 30 {r.randint(1000000, 9999999)}"
        return f"+33 6 {r.randint(10, 99)} {r.randint(10, 99)} {r.randint(10, 99)} {r.randint(10, 99)}"

    # --- table -------------------------------------------------------------------------------------------
    def build(self) -> tuple[pd.DataFrame, list[list[tuple[str, int, int]]], list[str]]:
        r = self.r
        table: dict[str, list[Any]] = {k: [] for k in ("patient", "email", "phone", "dob", "mrn", "notes")}
        gold: list[list[tuple[str, int, int]]] = []
        for _ in range(self.rows):
            script = r.random() < 0.1
            if script:
                first, last = "", ""
                _, full = self.script_name()
            else:
                first, last = self.given(), self.surname()
                full = f"{first} {last}"
            email = f"{(first or 'pt')[:1].lower()}.{''.join(c for c in (last or 'x') if c.isalpha()).lower()}"
            email += f"{r.randint(1, 99)}@{r.choice(('mailbox.test', 'post.example', 'inbox.example'))}"
            table["patient"].append(full)
            table["email"].append(email)
            table["phone"].append(self.phone())
            table["dob"].append((dt.date(1935, 1, 1) + dt.timedelta(days=r.randint(0, 30000))).isoformat())
            table["mrn"].append(f"Q{r.randint(0, 9_999_999):07d}")
            text, spans = self.note(full, first, last, email)
            table["notes"].append(text)
            gold.append(spans)
        clean = [self.clean_note() for _ in range(500)]
        return pd.DataFrame(table), gold, clean

    def clean_note(self) -> str:
        r = self.r
        if r.random() < 0.3:
            return " ".join(r.sample(CLEAN_OTHER, 2))
        return " ".join(r.sample(CLEAN_EN, r.randint(2, 4)))

    def note(self, full: str, first: str, last: str, email: str) -> tuple[str, list[tuple[str, int, int]]]:
        r = self.r
        parts: list[tuple[str, str | None]] = []

        def add(text: str, ent: str | None = None) -> None:
            parts.append((text, ent))

        def person() -> tuple[str, str]:
            return self.given(), self.surname()

        if not first:  # the patient is named in a non-Latin script
            self._script_note(add, full)
        else:
            style = r.choice(("discharge", "referral", "handover", "email", "mdt", "lone", "de", "es", "fr",
                              "it", "nl"))  # fmt: skip
            getattr(self, "_" + style)(add, person, first, last, email)
        text, spans, pos = "", [], 0
        for piece, ent in parts:
            if ent:
                spans.append((ent, pos, pos + len(piece)))
            text += piece
            pos += len(piece)
        return text, spans

    def _clean(self, n: int = 1) -> str:
        return " ".join(self.r.sample(CLEAN_EN, n))

    def _discharge(self, add: Any, person: Any, first: str, last: str, email: str) -> None:
        r = self.r
        add("DISCHARGE SUMMARY\nPatient: "), add(f"{last.upper()}, {first}", "PERSON"), add("\n")
        g, s = person()
        add(f"{r.choice(('Attending', 'Consultant', 'Responsible clinician'))}: "), add(f"Dr. {g} {s}", "PERSON")
        add("\n" + self._clean(2) + " ")
        g2, _ = person()
        add(self.cap_surname(last), "PERSON")
        add(f" is to be collected by {r.choice(('her', 'his'))} {r.choice(KIN)} ")
        add(g2, "PERSON"), add(". ")
        if r.random() < 0.5:
            g3, s3 = person()
            add("\n— "), add(f"{g3[0]}. {self.cap_surname(s3)}", "PERSON"), add(f", {r.choice(CRED)}")

    def _referral(self, add: Any, person: Any, first: str, last: str, email: str) -> None:
        r = self.r
        _g, s = person()
        add("Dear Dr "), add(self.cap_surname(s), "PERSON"), add(",\nI would be grateful if you could see ")
        add(r.choice(("Mr ", "Mrs ", "Ms ", "")))
        add(f"{first[0]}. {last}" if r.random() < 0.5 else f"{first} {last}", "PERSON")
        add(f", whom I saw today. {self._clean(1)} {r.choice(('His', 'Her'))} GP is ")
        g2, s2 = person()
        add(f"{g2} {s2}", "PERSON"), add(f". Contact: {r.choice(('e-mail', 'email'))} "), add(email, "EMAIL")
        add(".\nYours sincerely,\n")
        g3, s3 = person()
        add(f"{g3} {self.cap_surname(s3)}", "PERSON"), add(f"\n{r.choice(('Consultant Neurologist', 'GP', 'ST3'))}")

    def _handover(self, add: Any, person: Any, first: str, last: str, email: str) -> None:
        r = self.r
        add(f"Handover 19:00. Bed {r.randint(1, 30)} – "), add(f"{first} {last}", "PERSON")
        add(f" ({r.randint(20, 95)}). {self._clean(1)} Family: {r.choice(KIN)} ")
        g, s = person()
        add(f"{g} {s}" if r.random() < 0.5 else g, "PERSON"), add(f" visiting at {r.randint(1, 8)}pm, phone ")
        add(self.phone(), "PHONE"), add(". Handed over to ")
        g2, s2 = person()
        role = r.choice(ROLES)
        add(f"{role} "), add(g2 if role in ("nurse", "SN") else f"{g2} {s2}", "PERSON"), add(".")

    def _email(self, add: Any, person: Any, first: str, last: str, email: str) -> None:
        r = self.r
        g, s = person()
        add("From: "), add(f"{g} {s}", "PERSON"), add(" <"), add(f"{g.lower()}.x@trust.example", "EMAIL")
        add(">\nSubject: re: ")
        add(f"{first} {last}", "PERSON"), add(f" results\n\nHi {r.choice(('Dr ', ''))}")
        g2, _s2 = person()
        add(g2, "PERSON"), add(f",\n{self._clean(1)} Could you ring the patient on ")
        add(self.phone(), "PHONE"), add("?\n\nThanks,\n"), add(g, "PERSON")

    def _mdt(self, add: Any, person: Any, first: str, last: str, email: str) -> None:
        r = self.r
        add("MDT ")
        add(f"{last.upper()}, {first}" if r.random() < 0.5 else f"{first} {last}", "PERSON")
        add(". Present: ")
        n = r.randint(3, 5)
        for i in range(n):
            g, s = person()
            k = r.randint(0, 3)
            if k == 0:
                add(f"Dr {g[0]}. {self.cap_surname(s)}", "PERSON")
            elif k == 1:
                add(f"{g} {s}", "PERSON"), add(f" ({r.choice(('pharmacist', 'dietitian', 'OT', 'CNS'))})")
            elif k == 2:
                add(f"Prof. {self.cap_surname(s)}", "PERSON")
            else:
                add(f"{g} {s}", "PERSON")
            add(", " if i < n - 2 else (" and " if i == n - 2 else ". "))
        add(self._clean(1))

    def _lone(self, add: Any, person: Any, first: str, last: str, email: str) -> None:
        r = self.r
        k = r.randint(0, 2)
        if k == 0:
            add(f"{r.randint(20, 95)}-year-old "), add(first, "PERSON"), add(" reviewed on the ward. ")
        elif k == 1:
            add(first, "PERSON"), add(f" says the pain is better today. {self._clean(1)} ")
        else:
            add(f"{self._clean(1)} Told "), add(f"{first} {last}", "PERSON"), add(" about the results. ")
        add(self._clean(1))

    def _de(self, add: Any, person: Any, first: str, last: str, email: str) -> None:
        r = self.r
        _g, s = person()
        add(f"Arztbrief. Sehr geehrte{r.choice(('r Herr', ' Frau'))} Kollege Dr. "), add(self.cap_surname(s), "PERSON")
        add(", wir berichten über "), add(r.choice(("Frau ", "Herrn "))), add(f"{first[0]}. {last}", "PERSON")
        add(f". {r.choice(CLEAN_OTHER[:2])} Mit freundlichen Grüßen, Prof. Dr. med. ")
        g2, s2 = person()
        add(f"{g2} {self.cap_surname(s2)}", "PERSON")

    def _es(self, add: Any, person: Any, first: str, last: str, email: str) -> None:
        r = self.r
        add("Informe de alta. Paciente: "), add(r.choice(("Dña. ", "D. ", "")))
        add(f"{first} {last}", "PERSON")
        add(f". {r.choice(CLEAN_OTHER[2:4])} Acompañado por su {r.choice(('hija', 'hijo', 'esposa'))} ")
        g, s = person()
        add(f"{g} {s}", "PERSON"), add(". Firmado: "), add(r.choice(("Dra. ", "Dr. ")))
        g2, s2 = person()
        add(f"{g2} {self.cap_surname(s2)}", "PERSON"), add(".")

    def _fr(self, add: Any, person: Any, first: str, last: str, email: str) -> None:
        r = self.r
        add("Compte rendu d'hospitalisation. "), add(r.choice(("Mme ", "M. ", "Mlle ")))
        add(f"{first[0]}. {last}" if r.random() < 0.5 else f"{first} {last}", "PERSON")
        add(f". {r.choice(CLEAN_OTHER[4:6])} Sa {r.choice(('fille', 'sœur', 'mère'))} ")
        g, _s = person()
        add(g, "PERSON"), add(" est prévenue. Dr "), add(self.cap_surname(person()[1]), "PERSON"), add(".")

    def _it(self, add: Any, person: Any, first: str, last: str, email: str) -> None:
        r = self.r
        add("Lettera di dimissione. "), add(r.choice(("Sig.ra ", "Sig. ", "Paziente ")))
        add(f"{first} {last}", "PERSON"), add(f". {r.choice(CLEAN_OTHER[6:8])} Firmato: ")
        add(r.choice(("dott.ssa ", "dott. ", "Dott. ")))
        g, s = person()
        add(f"{g} {self.cap_surname(s)}", "PERSON"), add(".")

    def _nl(self, add: Any, person: Any, first: str, last: str, email: str) -> None:
        r = self.r
        add("Verpleegkundige overdracht. "), add(r.choice(("Mevr. ", "Dhr. ", "")))
        add(f"{first[0]}. {last}" if r.random() < 0.6 else f"{first} {last}", "PERSON")
        add(f". {r.choice(CLEAN_OTHER[8:10])} Echtgeno{r.choice(('te', 'ot'))} ")
        g, s = person()
        add(f"{g} {s}", "PERSON"), add(" is ingelicht. Zaalarts: dr. "), add(self.cap_surname(person()[1]), "PERSON")
        add(".")

    def _script_note(self, add: Any, full: str) -> None:
        r = self.r
        k = r.randint(0, 2)
        if k == 0:
            add("Patient "), add(full, "PERSON"), add(f" seen with an interpreter. {self._clean(1)}")
        elif k == 1:
            add(f"{self._clean(1)} Name as written by the patient: "), add(full, "PERSON"), add(". ")
        else:
            add("Interpreter requested for "), add(full, "PERSON"), add(". ")
        if r.random() < 0.6:
            _, rel = self.script_name()
            add(f" {r.choice(KIN).capitalize()} "), add(rel, "PERSON"), add(" present.")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=8675309)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--no-protect", action="store_true")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    sys.path.insert(0, str(HERE))
    from thirdcorpus import measure

    load = open("/proc/loadavg").read().split()[:3]
    res = measure(args.rows, args.seed, None, args.repeats, not args.no_protect, "fourth")
    res["load_average_at_start"] = load
    res["when"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    name = args.json or str(WORK / f"fourth_{args.seed}_rules.json")
    Path(name).write_text(json.dumps(res, indent=1, default=str, ensure_ascii=False))
    print(json.dumps(res, indent=1, default=str, ensure_ascii=False)[:14000])


if __name__ == "__main__":
    main()
