"""Names outside the bundled dictionaries, found by the words around them (titles, relatives, roles,
introducing phrases, sign-offs, apposition), and the capitalised words that must stay unflagged."""

from __future__ import annotations

import pytest

from bastion.data.pii import detect_spans
from bastion.data.pii._context_names import find_context_names
from bastion.data.pii._names import first_names, last_names


def _persons(text: str) -> list[str]:
    return [text[s.start : s.end] for s in detect_spans(text) if s.entity == "PERSON"]


# every name here is made up and absent from the bundled dictionaries (checked below), so only the context
# can find it
FOUND = [
    ("Her daughter Zorabel Quintanoux can be reached later.", "Zorabel Quintanoux"),
    ("Accompanied by her son, Brannoc.", "Brannoc"),
    ("The patient's husband Taddeus Wrzelbicki asked for an update.", "Taddeus Wrzelbicki"),
    ("Mother (Ilvanna) present throughout.", "Ilvanna"),
    ("Seen by Dr. Okwuosaba today.", "Okwuosaba"),
    ("Reviewed by Prof. van der Kwaelen.", "van der Kwaelen"),
    ("cc: Dr A. Lindqvarn, GP.", "A. Lindqvarn"),
    ("Frau Dr. Weißzahn übernimmt.", "Weißzahn"),
    ("Nurse Orlethwyn gave the evening dose.", "Orlethwyn"),
    ("Seen by registrar Aoibheann Byrnesk.", "Aoibheann Byrnesk"),
    ("Spoke to Kolombina Torovic, the patient's sister, by phone.", "Kolombina Torovic"),
    ("Emergency contact: Kožešníkov, Teodorka (carer), e-mail on file.", "Kožešníkov, Teodorka"),
    ("NOK: Yselda Marchbanké (niece).", "Yselda Marchbanké"),
    ("Collateral history from granddaughter Pellamy.", "Pellamy"),
    ("Plan agreed. Kind regards, Ottoline Vasquesz", "Ottoline Vasquesz"),
    ("Wound clean. -- Thesander Grumbolt (FY2)", "Thesander Grumbolt"),
    ("Tochter Annelind Schmöckel ist informiert.", "Annelind Schmöckel"),
    ("Sa fille Inèsanne Morvoux est présente.", "Inèsanne Morvoux"),
    ("Su hija Lucíbel Parramonde acompaña.", "Lucíbel Parramonde"),
    ("Patiënt aanwezig, dochter Fennaline de Vroegh ook.", "Fennaline de Vroegh"),
    ("La figlia Ornelfa Bastuzzi presente.", "Ornelfa Bastuzzi"),
    ("Pt Jan van Wessexholm seen today.", "Jan van Wessexholm"),
    ("Seen by Dr. Ward, then Dr. West.", "Ward"),  # everyday words as surnames after a title
    ("Lives with her husband Will.", "Will"),  # a dictionary name that is also a word, after a relative
    ("Reviewed by Dr. den Teulingh.", "den Teulingh"),
    ("Son Brandon Lane (PESEL on file) will pay.", "Brandon Lane"),  # a street word as a surname after a name
    ("Pt L. Ward seen today.", "L. Ward"),
    ("Seen by Dr. Doctor today.", "Doctor"),  # a title word as a surname right after a title
    ("Seen by Dr. die Pelser. DOB on file.", "die Pelser"),  # an unlisted particle between title and surname
    ("Visto dal dott. La Barbarossi. Controllo.", "La Barbarossi"),  # a capitalised particle after a title
    ("Gezien door dr. Le Flochard. Controle.", "Le Flochard"),
    ("Oberarzt Dr. St-Germainville. Entlassung.", "St-Germainville"),  # a hyphenated name before a full stop
]


@pytest.mark.parametrize(("text", "name"), FOUND)
def test_name_found_by_its_context(text: str, name: str) -> None:
    assert name in _persons(text), _persons(text)


def test_made_up_names_are_outside_the_dictionaries() -> None:
    known = first_names() | last_names()
    for _, name in FOUND[:22]:
        words = [w.strip(",.") for w in name.split() if w[0].isupper() and not w.endswith(".")]
        assert any(w not in known for w in words), name


CLEAN = [
    "Known Parkinson's disease, on levodopa.",
    "Lives with Parkinson's disease since 2010.",
    "Seen by Cardiology; reviewed by Orthopaedic Surgery.",
    "Discussed with the Oncology team at the MDT.",
    "Transferred from Royal London Hospital overnight.",
    "Referred by Addenbrooke's Hospital.",
    "Moved to sister Ward 5 after the fall.",
    "Presented with Bell's palsy; Graves' disease noted.",
    "Glasgow Coma Scale 15. Babinski sign negative.",
    "Der Patient klagt über starke Kopfschmerzen seit Montag.",
    "Kontrolle in der Ambulanz in zwei Wochen.",
    "BP 120/80 -- Stable overnight.",
    "Dear Sir or Madam, please find the results attached.",
    "Patient Education leaflet given.",
    "Seen by GP. Spoke to the Emergency Department.",
    "Lives with his wife. She manages his medication.",
    "Son visited on Monday.",
    # protected text must not read as new names: a title before a title, context from the previous sentence
    "Oberarzt Dr. <PERSON> hat entlassen.",
    "Seen by Dr. in Cardiology; Penny Lane is the street.",
    "Call Dr. on Monday.",
    "Le Patient est vu. La Barbarossi famille?",
    "Emergency contact: <PERSON> (sister), e-mail <EMAIL>.  Foley catheter removed this morning.",
]


@pytest.mark.parametrize("text", CLEAN)
def test_capitalised_words_that_are_no_names(text: str) -> None:
    assert _persons(text) == []


def test_spans_cover_the_name_only() -> None:
    text = "Her daughter Zorabel Quintanoux can be reached."
    spans = list(find_context_names(text))
    assert [(text[s:e], score >= 0.5) for s, e, score in spans] == [("Zorabel Quintanoux", True)]


def test_name_position_needs_a_word_boundary() -> None:
    # "son" inside "person" or "reason" is no relative
    assert _persons("The person Qwimbly left. For reason Qwimbly stayed.") == []


def test_a_title_after_a_name_does_not_swallow_the_next_words() -> None:
    assert _persons("Pt Micca, Sig.ra seen at Ospedale San Raffaele by the team.") == ["Micca"]
