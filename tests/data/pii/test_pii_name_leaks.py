"""Classes of name leak, each proven with names made here from random syllables (so no bundled dictionary
holds them and only the principle can find them): particles after initials, hyphen and apostrophe names,
roles and titles in several languages, signatures, attendance lists, ages, names in other scripts, name
columns whose values no dictionary knows; and the decoys that must stay unflagged (places, facilities,
eponyms, drugs, Greek letters), plus the ITIN-or-lot-number decision."""

from __future__ import annotations

import random

import pandas as pd
import pytest

from bastion.data.pii import detect_spans, scan_table
from bastion.data.pii._names import first_names, last_names

_ON = ("b", "br", "d", "f", "g", "gr", "k", "kl", "l", "m", "n", "p", "r", "s", "t", "tr", "v", "z", "sh", "th")
_VO = ("a", "e", "i", "o", "u", "ai", "ou", "ie", "y", "á", "ø", "ü")
_CO = ("n", "r", "l", "s", "k", "x", "v", "th", "rt")
_RNG = random.Random(20261208)


def _word(rng: random.Random = _RNG) -> str:
    w = "".join(rng.choice(_ON) + rng.choice(_VO) for _ in range(rng.randint(2, 3))) + rng.choice(_CO)
    return w.capitalize()


# eight given names and eight surnames, drawn once; the check below proves no dictionary holds them
G = [_word() for _ in range(8)]
S = [_word() for _ in range(8)]


def _persons(text: str) -> list[str]:
    return [text[s.start : s.end] for s in detect_spans(text) if s.entity == "PERSON"]


def test_generated_names_are_in_no_dictionary() -> None:
    known = first_names() | last_names()
    assert not (set(G) | set(S)) & known


FOUND = [
    # particles after initials and inside names, lower-case or capitalised
    (f"Verpleegkundige overdracht. Dhr. L. te {S[0]}. Stabiel.", f"L. te {S[0]}"),
    (f"Seen with {G[0][0]}. de la {S[1]} today.", f"{G[0][0]}. de la {S[1]}"),
    (f"Wir berichten über Herrn S. bin {S[2]}. Entlassung.", f"S. bin {S[2]}"),
    (f"Her GP is {G[1]} van der {S[3]}. Contact on file.", f"{G[1]} van der {S[3]}"),
    (f"Mit freundlichen Grüßen, Prof. Dr. med. {G[2]} Bin {S[4]}", f"{G[2]} Bin {S[4]}"),
    (f"Sehr geehrter Herr Kollege Dr. Te {S[5]}, wir berichten.", f"Te {S[5]}"),
    (f"Gezien door dr. De la {S[6]}. Controle.", f"De la {S[6]}"),
    (f"Compte rendu. Mme T. d'{S[7]}. Transfert.", f"T. d'{S[7]}"),
    (f"Present: Prof. Van der {S[0]}, Dr {S[1]}.", f"Van der {S[0]}"),
    # hyphenated and apostrophe names, al-/Mc prefixes
    (f"Dear Dr {S[0]}-{S[1]},\nthank you.", f"{S[0]}-{S[1]}"),
    (f"Discussed with Dr O'{S[2].lower()}.", f"O'{S[2].lower()}"),  # O' + lower case, as entry systems write it
    (f"Dear Dr to {S[3]}, thank you.", f"to {S[3]}"),  # a particle that is also a function word, after a title
    (f"Oberarzt Dr. {S[4][:-1]}a'. Entlassung.", f"{S[4][:-1]}a'"),  # a final elision
    (f"Visto dal dott. {S[5]}ment. Controllo.", f"{S[5]}ment"),  # a noun-like ending right after a title
    (f"Il figlio Di{S[6]} {S[7]} presente.", f"Di{S[6]} {S[7]}"),  # a second capital after Di/De/La
    (f"Reviewed by Prof. al-{S[3]} this morning.", f"al-{S[3]}"),
    (f"Handed over to pharmacist {G[3]} Mc{S[4]}.", f"{G[3]} Mc{S[4]}"),
    # clinical capitals
    (f"DISCHARGE SUMMARY\nPatient: {S[5].upper()}, {G[4]}\nPlan: home.", f"{S[5].upper()}, {G[4]}"),
    # roles and titles in several languages
    (f"Handed over to SN {G[5]}.", G[5]),
    (f"Visited by pastor {G[6]} {S[6]} on Sunday.", f"{G[6]} {S[6]}"),
    (f"Lettera di dimissione. Sig.ra {G[7]} {S[7]}. Controllo.", f"{G[7]} {S[7]}"),
    (f"Informe de alta. Firmado: Dra. {G[0]} {S[0]}.", f"{G[0]} {S[0]}"),
    # signatures and e-mail shapes
    (f"Wound clean.\n— {G[1][0]}. {S[1]}, RN", f"{G[1][0]}. {S[1]}"),
    (f"Plan agreed.\nYours sincerely,\n{G[2]} {S[2]}\nConsultant Neurologist", f"{G[2]} {S[2]}"),
    (f"Could you ring her?\n\nThanks,\n{G[3]}", G[3]),
    (f"From: {G[4]} {S[4]} <x@trust.example>\nSubject: results", f"{G[4]} {S[4]}"),
    (f"Hi {G[5]},\nresults attached.", G[5]),
    # a name after an age
    (f"52-year-old {G[6]} reviewed on the ward.", G[6]),
]


@pytest.mark.parametrize(("text", "name"), FOUND)
def test_name_class_found(text: str, name: str) -> None:
    got = _persons(text)
    assert name in got, got


def test_every_name_of_an_attendance_list_is_found() -> None:
    names = [f"{G[0][0]}. {S[0]}", f"{G[1]} {S[1]}", S[2], f"{G[3]} {S[3]}"]
    text = f"MDT. Present: Dr {names[0]}, {names[1]} (pharmacist), Prof. {names[2]} and {names[3]}. Plan agreed."
    got = _persons(text)
    assert all(n in got for n in names), got


SCRIPTS = {
    "han": "王李张刘陈杨黄赵吴周",
    "cyrillic": "каролинаевмиштобу",
    "greek": "κωσταντίνομαρλεξ",
    "arabic": "محمدفاطعلينخا",
    "devanagari": "रजशकमसनतवदपल",
}


def _script_name(script: str, rng: random.Random) -> str:
    letters = SCRIPTS[script]
    if script == "han":
        return "".join(rng.choice(letters) for _ in range(3))
    word = lambda: "".join(rng.choice(letters) for _ in range(rng.randint(4, 7)))  # noqa: E731
    w1, w2 = word(), word()
    return f"{w1[:1].upper()}{w1[1:]} {w2[:1].upper()}{w2[1:]}"


@pytest.mark.parametrize("script", sorted(SCRIPTS))
def test_names_in_other_scripts_with_context_and_alone(script: str) -> None:
    rng = random.Random(script)
    a, b = _script_name(script, rng), _script_name(script, rng)
    assert a in _persons(f"Interpreter present. Daughter {a} translated.")
    assert b in _persons(f"Name as written by the patient: {b}. Chest clear, plan home tomorrow.")


@pytest.mark.parametrize(
    "text",
    [
        "Holiday in Valencia last month, no travel illness.",
        "Ingreso desde Urgencias del Hospital La Paz.",
        "Transferred from St. Mary's Hospital on Sunday.",
        "Known Parkinson's disease; Crohn's disease in remission; Hashimoto's thyroiditis.",
        "Started Xarelto 20 mg; Keppra continued; Eliquis held.",
        "45-year-old Caucasian man with chest pain.",
        "TNF-α raised; β-blocker started; dose 5 μg.",
        "Sehr geehrter Herr Kollege, wir berichten über den Verlauf.",
        "MEDICATIONS: ASPIRIN 75 MG, RAMIPRIL 5 MG. PLAN: REVIEW IN CLINIC.",
        "Present: no relatives. Plan discussed.",
        "Please ask Dr to Review. It is 5 o'clock.",
        # a line break carries a name only after a sign-off's comma, never after a role at a line's end
        "Seen by the Consultant Neurologist\nArztbrief folgt.",
    ],
)
def test_decoys_stay_unflagged(text: str) -> None:
    assert _persons(text) == []


def test_a_name_column_needs_no_dictionary() -> None:
    rng = random.Random(7)
    people = [f"{_word(rng)} {rng.choice(('te ', 'van der ', 'de la ', ''))}{_word(rng)}" for _ in range(60)]
    scripts = [_script_name(s, rng) for s in sorted(SCRIPTS) for _ in range(4)]
    frame = pd.DataFrame({"patient": people + scripts, "status": ["Awaiting Triage", "Under Observation"] * 40})
    frame["patient_status"] = frame["status"]
    found = {c.column: c.entity for c in scan_table(frame).columns}
    assert found["patient"] == "PERSON"
    assert found["patient_status"] is None and found["status"] is None


def test_a_name_column_with_repeated_people_stays_a_name_column() -> None:
    rng = random.Random(11)
    people = [f"{_word(rng)} {_word(rng)}" for _ in range(12)]
    frame = pd.DataFrame({"patient": [people[i % 12] for i in range(40)]})  # 12 people, 40 visits
    assert scan_table(frame).columns[0].entity == "PERSON"


@pytest.mark.parametrize(
    ("text", "flagged"),
    [
        ("ITIN 912-78-1234 on file.", True),
        ("Taxpayer id: 912-94-1234.", True),
        ("Shipped lot 912-78-1234 today.", False),  # same digits, a lot number
        ("Batch 955-70-0001 released.", False),
        ("ITIN 912-40-1234 on file.", False),  # middle group 40 is outside the IRS ITIN ranges
        ("SSN 123-45-6789 verified; lot 955-72-1234 shipped.", False),  # the SSN's context stays with it
    ],
)
def test_itin_needs_its_name_in_the_text(text: str, flagged: bool) -> None:
    itins = [text[s.start : s.end] for s in detect_spans(text) if s.entity == "US_SSN" and text[s.start] == "9"]
    assert bool(itins) is flagged, itins


def test_an_email_address_may_hold_letters_beyond_ascii() -> None:
    local = f"{G[0].lower()}.ø{S[0].lower()}"  # a letter beyond ASCII for sure
    text = f"From: <{local}@trust.example> about the results."
    assert [(sp.entity, text[sp.start : sp.end]) for sp in detect_spans(text) if sp.entity == "EMAIL"] == [
        ("EMAIL", f"{local}@trust.example")
    ]


def test_prose_in_another_script_is_no_name_even_beside_latin_placeholders() -> None:
    # many cells are scanned as one text: the Latin letters of other cells, and of <PERSON> placeholders left
    # by protection, must not make the words of a Hindi or Chinese note look like names standing alone
    from bastion.data.pii import detect_spans_batch

    cells = ["रोगी <PERSON> ठीक है", "患者<PERSON>今天好转，明天出院。", "Chest clear. <PERSON> seen, plan home."] * 20
    found = detect_spans_batch(cells)
    assert [c for c, sp in zip(cells, found, strict=True) if sp] == []

