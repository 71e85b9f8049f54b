"""Names the dictionaries do not hold, found by the position they stand in.

A capitalised word run is a person's name when the words around it say so, whatever the name itself:

- after a title or honorific ("Dr. Okafor", "Prof. van der Berg", "Nurse Flora", "Frau Dr. Weiß", "dott. Rossi");
- after a word for a relative or a carer, in several languages ("her daughter Maria Lopez", "son, Ben",
  "the patient's husband Tomasz", "Tochter Anna", "sa fille Inès", "su hija Lucía", "dochter Fenna");
- after a clinical role ("seen by registrar Aoife Byrne", "GP Dorothea Hassing");
- after a phrase that introduces a person ("spoke to", "seen by", "discussed with", "collateral history
  from", "accompanied by", "NOK:", "emergency contact:", "cc:", "Dear") or a sign-off ("Kind regards,");
- before a relation in apposition ("Kolombina Toró, the patient's sister", "Jeník, Leontina (carer)").

The name run itself needs shape evidence: capitalised tokens (any script of Latin letters with diacritics,
hyphens, apostrophes, lower-case particles inside), stopping at everyday, clinical and place words, and never
a facility ("St Mary's Hospital") or an eponym ("Parkinson's disease", "Bell's palsy").
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from functools import lru_cache
from typing import Any

from bastion.data.pii._names import NOT_NAMES, first_names, last_names
from bastion.data.pii.person import _FACILITY_AFTER, _FACILITY_BEFORE, _LOW, _UP

__all__ = ["find_context_names", "name_shaped_cells", "refine_model_span"]

# Latin Extended-B and Latin Extended Additional (Romanian ș/ț, Vietnamese ...) on top of person.py's letters
_XB_UP = "".join(c for c in map(chr, [*range(0x180, 0x250), *range(0x1E00, 0x1F00)]) if c.isupper())
_XB_LOW = "".join(c for c in map(chr, [*range(0x180, 0x250), *range(0x1E00, 0x1F00)]) if c.islower())
_U = _UP + _XB_UP
_L = _LOW + _XB_LOW
# prefixes (O', Mc, d', al- ...; Di/De/La/Van before a second capital: "DiAngelo", "LaFleur"), a lower-case
# O' form ("O'connor", as entry systems write it) and a final elision ("Solda'")
_WORD = (
    rf"(?:(?:O['’]|Mc|Mac|D['’]|d['’]|L['’]|[Aa]l-|[Ee]l-|Di|De|Da|Du|La|Le|Van)?[{_U}][{_L}]+|O['’][{_L}]{{2,}})"
    rf"(?:['’][{_L}]+|['’](?![{_U}{_L}]))?(?:-[{_U}][{_L}]+)*"
)
_PART = (
    r"(?:van der|van den|van de|van het|van 't|van ’t|van|von der|von|zu|de la|de las|de los|del|della|den|het|"
    r"'t|’t|op den|op de|der|de|da|das|di|do|dos|du|le|la|bin|ibn|al|el|ten|ter|te|af|av|y|e)"
)
_INITIALS = rf"(?:[{_U}]\. ?){{1,2}}"
# one name run: particles may lead ("van der Berg") and sit inside; initials may lead ("A. Lindstrøm")
_RUN = rf"(?:{_PART} )*(?:{_INITIALS}(?:{_PART} )*)?{_WORD}(?:(?: (?:{_PART} )*|-){_WORD}){{0,3}}"
# "Kožešník, Teodora" / "SURNAME, Given"
_COMMA = rf"(?:{_WORD}|[{_U}]{{2,}}(?:[-' ][{_U}]{{2,}})?), {_WORD}"
# an ALL-CAPS surname, as clinical and French-style records write it: "Jeanne DUPONT", "Dr SMITH", "DUPONT Jeanne"
_CAPS = rf"[{_U}]{{3,}}(?:[-'’][{_U}]{{2,}})*(?![\w'’])"
_NAME = _RUN  # ALL-CAPS surnames in a run ({_CAPS}) were tried and left out: see bench/pii/RESULTS.md

_TITLES = (
    "Dr", "Dr.", "Drs", "Doctor", "Prof", "Prof.", "Professor", "Mr", "Mr.", "Mrs", "Mrs.", "Ms", "Ms.", "Miss",
    "Mx", "Mx.", "Sr", "Sra", "Mlle.", "Drs.", "Prof. Dr.", "Sir", "Dame", "Lady", "Lord", "Nurse", "Sister",
    "Matron", "Herr", "Hr.", "Frau", "Fr.", "Mme", "Mme.",
    "Mlle", "Madame", "Monsieur", "Sr.", "Sra.", "Srta.", "Don", "Doña", "Dña.", "Dott.", "Dott.ssa", "Dr.ssa",
    "Sig.", "Sig.ra", "Pan", "Pani", "Dhr.", "Mevr.", "Mw.", "dr.", "dr", "prof.", "dott.", "dott.ssa", "sig.",
    "Oberarzt", "Oberärztin", "Chefarzt", "Chefärztin", "Assistenzarzt", "Assistenzärztin", "Hausarzt",
    "Hausärztin", "Pfleger", "Pflegerin", "Schwester", "Fam.", "Prof. Dr. med.", "Dr. med.", "Dra.", "Dra",
    "Pastor", "Pastora", "Rev.", "Revd", "Imam", "Rabbi", "Sig.na", "Mag.", "Ing.", "Dipl.-Ing.",
)  # fmt: skip
_TITLE_WORDS = frozenset(t.rstrip(".") for t in _TITLES if t[:1].isupper()) - {"Don", "Pan", "Lady", "Lord"}
_CAP_PARTICLES = frozenset(
    "De Di Da Del Della Dello Dal Dalla La Le Lo Li Van Von Du Des Dos Das Der Den Ten Ter Te Al El San St Ste Bin "
    "Ibn Op Vander".split()
)
# lower-case particles that may follow a capitalised one: "Dr. De la Cruz", "Van der Berg"
_LOW_PARTICLES = frozenset("la las los der den de del da di le lo".split())
_TITLE_ABBREVIATIONS = frozenset(
    "Dr Drs Prof Mr Mrs Ms Mx Hr Fr Sr Sra Srta Dott Sig Mme Mlle Dhr Mevr Mw Dña St Mt".split()
)
# a second title after the first: "Frau Dr. Weiß", "Herr Prof. Dr. Maier"
_SECOND_TITLES = ("Dr", "Dr.", "Prof", "Prof.", "Prof. Dr.", "dr.", "prof.", "Dott.", "Dott.ssa", "Dr.ssa", "Dr. med.",
                  "Prof. Dr. med.", "Dr. med. dent.", "Kollege Dr.", "Kollegin Dr.", "Kollege", "Kollegin",
                  "Collega", "Collègue", "Colleague", "collega", "collègue", "Dr. rer. nat.")  # fmt: skip
_KIN = (
    # English
    "wife", "husband", "partner", "spouse", "fiancé", "fiancée", "fiance", "fiancee", "boyfriend", "girlfriend",
    "daughter", "son", "mother", "mum", "mom", "father", "dad", "sister", "brother", "sibling", "twin", "niece",
    "nephew", "granddaughter", "grandson", "grandchild", "grandmother", "grandfather", "grandma", "grandpa",
    "granny", "aunt", "auntie", "uncle", "cousin", "stepdaughter", "stepson", "stepmother", "stepfather",
    "daughter-in-law", "son-in-law", "mother-in-law", "father-in-law", "sister-in-law", "brother-in-law",
    "widow", "widower", "carer", "caregiver", "guardian", "neighbour", "neighbor", "friend", "flatmate",
    "roommate", "landlady", "landlord", "godmother", "godfather", "next of kin", "NOK", "relative",
    # German
    "Ehefrau", "Ehemann", "Ehegatte", "Ehegattin", "Lebensgefährte", "Lebensgefährtin", "Partnerin",
    "Tochter", "Sohn", "Mutter", "Vater", "Bruder", "Enkel", "Enkelin", "Tante", "Onkel", "Nichte", "Neffe",
    "Betreuer", "Betreuerin", "Nachbar", "Nachbarin",
    # French
    "fille", "fils", "mari", "épouse", "époux", "conjoint", "conjointe", "compagnon", "compagne", "mère",
    "père", "frère", "sœur", "soeur", "petite-fille", "petit-fils", "neveu", "nièce", "tante", "oncle",
    # Spanish / Portuguese
    "hija", "hijo", "esposo", "esposa", "marido", "madre", "padre", "hermano", "hermana", "nieto", "nieta",
    "tío", "tía", "sobrino", "sobrina", "pareja", "filha", "filho", "mãe", "pai", "irmão", "irmã", "neto",
    "neta", "cônjuge",
    # Italian
    "figlia", "figlio", "marito", "moglie", "fratello", "sorella", "nipote", "zia", "zio", "compagna",
    "compagno",
    # Dutch
    "dochter", "zoon", "echtgenote", "echtgenoot", "moeder", "vader", "broer", "zus", "zuster", "kleindochter",
    "kleinzoon", "oom",
)  # fmt: skip
_ROLES = (
    "GP", "consultant", "registrar", "SHO", "FY1", "FY2", "attending", "resident", "intern", "fellow",
    "physician", "surgeon", "anaesthetist", "anesthetist", "radiologist", "cardiologist", "oncologist",
    "neurologist", "psychiatrist", "paediatrician", "pediatrician", "geriatrician", "haematologist",
    "hematologist", "dermatologist", "gastroenterologist", "urologist", "obstetrician", "gynaecologist",
    "gynecologist", "pharmacist", "physiotherapist", "physio", "therapist", "dietitian", "dietician",
    "psychologist", "counsellor", "counselor", "social worker", "midwife", "health visitor", "nurse",
    "ward sister", "charge nurse", "matron", "paramedic", "chaplain", "interpreter", "key worker", "advocate",
    "solicitor", "colleague", "employer", "teacher", "clinician", "practitioner", "locum",
    "SN", "staff nurse", "RGN", "HCA", "CNS", "nurse practitioner", "pastor", "priest", "rabbi", "imam", "OT",
    "SLT", "keyworker", "doula", "Pflegekraft", "enfermera", "enfermero", "infirmière", "infirmier",
    "infermiera", "infermiere", "verpleegkundige", "huisarts", "médecin traitant", "medico curante",
    "médico de cabecera", "Hausarzt", "Hausärztin",
)  # fmt: skip
_INTRO = (
    "spoke to", "spoke with", "speaking to", "talked to", "talked with", "seen by", "reviewed by", "examined by",
    "assessed by", "discussed with", "d/w", "dw", "referred by", "referral from", "letter from", "call from",
    "called by", "phoned by", "collateral history from", "collateral from", "history from", "accompanied by",
    "brought in by", "visited by", "lives with", "living with", "staying with", "escorted by", "signed by",
    "dictated by", "authorised by", "authorized by", "approved by", "verified by", "countersigned by",
    "handed over to", "handover to", "handed over by", "on behalf of", "c/o", "FAO", "attn", "attn:", "cc",
    "cc:", "NOK:", "NOK -", "next of kin:", "emergency contact:", "contact person:", "contact:", "informant:",
    "signed:", "signature:", "author:", "clinician:", "consultant:", "GP:", "Dear", "Patient", "Pt",
    "Pt.", "Patientin", "Patiente", "Paciente", "Paziente", "Patiënt", "Pacjent", "Pacjentka",
    "untersucht von", "gesehen von", "vu par", "adressé par", "adressée par", "visto por", "visto da",
    "visitato da", "gezien door",
    "kind regards,", "best regards,", "warm regards,", "regards,", "best wishes,", "many thanks,", "thanks,",
    "thank you,", "yours sincerely,", "yours faithfully,", "sincerely,", "cheers,", "mit freundlichen grüßen,",
    "cordialement,", "atentamente,", "cordiali saluti,", "met vriendelijke groet,", "from:", "to:", "hi", "hello",
    "hey", "best,", "thx,", "firmado:", "firmato:", "signé:", "gez.", "getekend:", "unterschrift:",
    "mit freundlichen grüßen", "met vriendelijke groet", "un saludo,", "saluti,", "bien à vous,",
)  # fmt: skip

# Capitalised words a name run never contains even after a title (grammar words, pronouns, weekdays ...)
_HARD_STOP = frozenset(
    """The A An And Or But If In On At To For Of By With From As Is It Its This That These Those He She They We
    You I His Her Their Our My Your Who Which Was Were Has Have Had Would Can Could Might Should Not No
    Yes Also Then When After Before Today Tomorrow Yesterday Monday Tuesday Wednesday Thursday Friday Saturday
    Sunday Der Die Das Den Dem Des Ein Eine Und Oder Le La Les Un Une Et Ou El Los Las Y Il Lo Gli De Het En
    Kollege Kollegin Collega Collègue""".split()
)
# Everyday, clinical and place words that end a name run found only by its position
_SOFT_STOP = frozenset(
    """Team Service Services Department Dept Unit Ward Clinic Hospital Surgery Practice Centre Center Trust Board
    Medicine Medical Health Care Nursing Staff Police Ambulance Paramedics Triage Emergency Reception Admissions
    Pharmacy Theatre Theatres Radiology Cardiology Oncology Neurology Pediatrics Paediatrics Orthopedics
    Orthopaedics Dermatology Psychiatry Urology Gastroenterology Haematology Hematology Rheumatology Nephrology
    Endocrinology Obstetrics Gynaecology Gynecology Physiotherapy Occupational Therapy Dietetics Microbiology
    Pathology Anaesthetics Anesthesia Geriatrics Respiratory Stroke General Internal Acute Intensive Outpatient
    Outpatients Inpatient Community Social Mental Public Safety Transport Security Chaplaincy Interpreter Family
    Relatives Parents Children Mr Mrs Ms Dr Prof Male Female Man Woman Boy Girl Baby Infant Adult Mum Dad
    Husband Wife Daughter Son Mother Father Brother Sister Partner Carer Friend Neighbour Neighbor Nurse Doctor
    Consultant Registrar Surgeon Physician GP Patient Pt Client Customer Phone Telephone Tel Mobile Email
    Mail Letter Fax Call Report Note Notes Plan Assessment Impression Diagnosis History Exam Examination
    Review Referral Discharge Admission Results Result Bloods Blood Scan Imaging Xray Ultrasound Echo
    Regards Thanks Sincerely Best Kind Yours Dear Hi Hello Re Subject Please Urgent Routine Copy
    England Scotland Wales Ireland Britain London Europe America Canada Australia Germany France Spain Italy
    Netherlands Poland Portugal Brazil India China Japan NHS HSE Ltd Inc Group Home House Road Street Lane
    Avenue Drive Unknown None Nil Same Other Another Both All Any Each Every Some Many Several Sir Madam
    Colleague Colleagues Education Leaflet Information Identification Details Summary Name Number Record
    Annual Follow Update Team""".split()
)
_EPONYM_AFTER = re.compile(
    r"(?:['’]s?)?\s+(?:disease|syndrome|sign|palsy|test|score|scale|criteria|manoeuvre|maneuver|procedure|"
    r"operation|reflex|phenomenon|triad|law|node|nodes|fracture|ulcer|tumou?r|lymphoma|sarcoma|"
    r"dementia|contracture|cyst|hernia|disorder|encephalopathy|thyroiditis|ward|unit|wing|block|"
    r"house|hall|school|college)\b"
)
# word shapes of specialties, departments and abstract nouns, never of names
# right after a title any surname goes ("dott. Paiement", "Dr. Clement"), but never a specialty
_SPECIALTY_SUFFIX = ("ology", "ologist", "ologists", "iatric", "iatrics", "iatry")
_NOUN_SUFFIX = ("ology", "ologist", "ologists", "iatric", "iatrics", "iatry", "ical", "ation", "ment", "ness",
                "ity", "ics", "ogy")  # fmt: skip


def _alt(words: tuple[str, ...], *, fold_first: bool = False) -> str:
    """One regex for a word list, as a trie (the engine then tries one branch per first letter, not every
    word at every position); ``fold_first`` also accepts each word with its first letter's case changed."""
    forms = set(words)
    if fold_first:
        forms |= {w[:1].swapcase() + w[1:] for w in words}
    trie: dict[str, Any] = {}
    for w in forms:
        node = trie
        for ch in w:
            node = node.setdefault(ch, {})
        node[""] = {}
    return _trie_regex(trie)


def _trie_regex(node: dict[str, Any]) -> str:
    ends = "" in node
    branches = [re.escape(ch) + _trie_regex(child) for ch, child in sorted(node.items()) if ch]
    if not branches:
        return ""
    body = branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"
    return f"(?:{body})?" if ends else body


_ROLE_WORDS = f"(?:{_alt(_ROLES, fold_first=True)})"
_GLUE_KIN = r"(?:,? |: | \(| - | – )"
_POSS = r"(?:(?:[Tt]he|[Mm]y|[Oo]ur|[Hh]is|[Hh]er|[Tt]heir) )?"
_END = r"(?![\w@'’])"
# title + name: "Dr. Okafor", "Dr A. Lindstrøm", "Frau Dr. Weiß", "Prof. van der Berg". The title comes first so
# the regex engine can skip to its few possible first letters; the word boundary is checked in Python.
_TITLE_RE = re.compile(rf"(?:{_alt(_TITLES)})(?: (?:{_alt(_SECOND_TITLES)}))? (?P<name>{_NAME}){_END}")
# title + an unlisted lower-case particle + one surname, then punctuation: "Dr. die Pelser.", "Dr. auch Schlauchin,"
_TITLE_PARTICLE_RE = re.compile(rf"(?:{_alt(_TITLES)}) (?P<name>(?P<part>[{_L}]{{2,4}}) {_WORD})(?=[.,;:)]|$)", re.M)
# function words that are also name particles (Low German/Frisian "to Holthues"): after a title, before a
# capitalised word and punctuation, they are part of the name
_PARTICLE_FUNCTION_WORDS = frozenset({"to", "zu", "op"})
_FUNCTION_WORDS = frozenset(
    """at in on to of for and or nor the by is was has had are were be been seen saw sees see met
    will can may did does who whom whose that this from with into onto upon over under per via not no yes
    then than also too very just only as if so but yet al le la les un une et ou el los las y en con por
    para del der den das und oder im am zum zur vom bei mit von auf aus nach""".split()
)
# one pass, one trie for the other triggers (cheaper than a pass or a branch per kind); the kind of the
# trigger that matched is looked up after:
# relative or carer + name: "her daughter Maria Lopez", "son, Ben", "Mother (Ana)", "the patient's husband X";
# clinical role + name: "registrar Aoife Byrne", "GP Dorothea Hassing";
# introducing phrase or sign-off + name or "Surname, Given": "spoke to ...", "NOK: Kowalski, Jan", "Kind regards, ..."
_CONTEXT_RE = re.compile(
    rf"(?<![\w.@'’-])(?P<trig>{_alt(_KIN + _ROLES + _INTRO, fold_first=True)})"
    rf"(?:,? |: | \(| - | – |(?<=,)\n| is | was ){_POSS}"
    rf"(?P<name>{_COMMA}|{_NAME}){_END}"
)
_KIN_FORMS = frozenset(w for k in _KIN for w in (k, k[:1].swapcase() + k[1:]))
# name + relation in apposition, found from the relation: "Toró, the patient's sister", "Anna Kowalska
# (daughter)", "Kožešník, Teodora (carer)"; the name run is then matched backwards from the relation
_APPOS_TAIL_RE = re.compile(
    r"(?=,| [(\-–])"  # implied by the three openings below; it only skips text faster
    rf"(?:,? \(|, (?:the patient['’]s |the pt['’]s |the |his |her |their |pt['’]s |patient['’]s )?|,? (?:- |– ))"
    rf"(?:{_alt(_KIN + _ROLES, fold_first=True)})\b"
)
_APPOS_NAME_RE = re.compile(rf"(?:{_COMMA}|{_WORD}(?:(?: (?:{_PART} )*|-){_WORD}){{1,3}})\Z")
# a dash sign-off: "-- Walter Stanley (FY2)" (two or more words, then the end, a comma or a bracket)
_DASH_RE = re.compile(rf"(?:--|—) (?P<name>{_WORD}(?:(?: (?:{_PART} )*|-){_WORD}){{1,3}})(?=$|\n|,| \()", re.M)
_BOUNDARY = frozenset(".@'’-_")
_NONSPACE = re.compile(r"\S+")


def _starts_word(text: str, pos: int) -> bool:
    return pos == 0 or not (text[pos - 1].isalnum() or text[pos - 1] in _BOUNDARY)


_VOWEL = re.compile("[AEIOUYÀ-ÆÈ-ÏÒ-ÖØ-Ý]")
# ALL-CAPS words that are acronyms, units or headings, never a surname
_CAPS_STOP = frozenset(
    """ICU HDU ITU MDT ECG EKG EEG EMG MRI CXR AXR USS OGD ERCP ENT OBGYN AE ED ER NHS DOB MRN NOK DNR DNACPR
    COPD CKD AKI UTI HIV AIDS IV IM PO SC PRN BID TID QID TDS QDS OD STAT RN MD PHD MBBS FRCP FRCS RGN HCA CNS
    OT SLT BMI GCS AVPU NEWS SATS PLAN NOTE NOTES DATE TIME WARD BED ADMISSION DISCHARGE SUMMARY HISTORY EXAM
    IMPRESSION ASSESSMENT MEDICATIONS MEDS ALLERGIES NKDA REVIEW RESULTS REPORT SIGNED PATIENT NAME ADDRESS
    PHONE EMAIL TEL FAX URGENT ROUTINE IMPORTANT OBS ASAP FYI AND THE FOR WITH NOT YES NONE NIL NAD SOB
    ASPIRIN COVID SARS MRSA ESBL CPAP BIPAP PEG NGT PICC CVC ABG VBG FBC LFT LFTS UE CRP ESR INR APTT TSH
    HBA1C EGFR DVT PE MI CVA TIA CABG PCI AF SVT VT VF OA RA SLE IBD IBS GORD""".split()
)
# roles written in capitals ("Seen by SHO", "NURSE") and more grades
_ROLES_UPPER = frozenset(r.upper() for r in _ROLES) | frozenset("SHO SPR STR RMO HO JHO CMT FY SN".split())
_PREFIX3 = frozenset(("al-", "Al-", "el-", "El-"))
_PREFIX2 = frozenset(("d'", "d’", "l'", "l’"))  # "d'Viegraith": the name is what follows


@lru_cache(maxsize=1)
def _known() -> frozenset[str]:
    return first_names() | last_names()


def _clip(text: str, start: int, end: int, strength: int) -> tuple[int, int] | None:
    """Cut a candidate name run at the first word that cannot be part of it; None when nothing is left."""
    known = _known()
    firsts = first_names()
    last_end = -1
    first_start = -1
    weak_first = False  # the run so far is one everyday word that is also a name ("Jan", "May")
    after_given = False  # the word before is an initial or a dictionary given name ("L. Ward", "Jason Lane")
    tokens = list(_NONSPACE.finditer(text, start, end))
    for k, m in enumerate(tokens):
        word = m.group(0).rstrip(",")
        w_start, w_end = m.start(), m.start() + len(word)
        core = word
        if len(word) > 3 and (word[2] == "-" or word[1] in "'’"):  # cheap test first: most words have no prefix
            core = word[3:] if word[:3] in _PREFIX3 else word[2:] if word[:2] in _PREFIX2 else word
        if "-" in core:
            core = core.split("-")[0]
        if (
            core in _CAP_PARTICLES
            and core == word
            and (strength == 2 or last_end >= 0)
            and k + 1 < len(tokens)
            and (tokens[k + 1].group(0)[:1].isupper() or tokens[k + 1].group(0) in _LOW_PARTICLES)
        ):
            # a capitalised particle inside a name or right after a title: "dott. La Barbera", "Anna De Luca"
            if first_start < 0:
                first_start = w_start
            after_given = False
            continue
        if core[:1].islower() or (len(core) == 2 and core.endswith(".")) or word.endswith("."):
            # particles and initials only lead or sit inside a name
            if first_start < 0:
                first_start = w_start
            after_given = core[:1].isupper()
            continue
        if core in _TITLE_ABBREVIATIONS and core == word and w_end < len(text) and text[w_end] == ".":
            break  # "Oberarzt Dr. <PERSON>": an abbreviated title, never a name
        if core in _HARD_STOP or (
            core not in known
            and core.lower().endswith(_SPECIALTY_SUFFIX if strength == 2 and last_end < 0 else _NOUN_SUFFIX)
        ):
            break
        if core in _SOFT_STOP or core in NOT_NAMES or core in _TITLE_WORDS:
            # right after a title any capitalised word is a surname ("Dr. West", "Dr. Doctor"); after a relative
            # one that is no clinical, place or title word; after an initial or a given name a dictionary
            # surname ("L. Ward", "Jason Lane"); elsewhere a dictionary name that is not the whole run
            # ("Pt Jan van Wessex", "Anna May Smith")
            soft = core in _SOFT_STOP or core in _TITLE_WORDS
            if last_end < 0 and first_start < 0 and (strength == 2 or (strength == 1 and not soft)):
                pass
            elif after_given and core in known:
                pass
            elif core in known and not soft:
                if last_end < 0:
                    weak_first = True
            else:
                break
        elif last_end >= 0:
            weak_first = False
        if first_start < 0:
            first_start = w_start
        last_end = w_end
        after_given = core in firsts
    if last_end < 0 or weak_first:
        return None
    if _FACILITY_AFTER.match(text, last_end) or _EPONYM_AFTER.match(text, last_end):
        return None
    return first_start, last_end


def find_context_names(text: str) -> Iterator[tuple[int, int, float]]:
    """(start, end, score) of names that stand where a name stands, dictionary or not."""
    # strength 2: a title; 1: a relative; 0: a role, an introducing phrase or a sign-off
    for m in _TITLE_RE.finditer(text):
        if _starts_word(text, m.start()):
            got = _clip(text, m.start("name"), m.end("name"), 2)
            if got is not None:
                yield got[0], got[1], 0.9
    for m in _TITLE_PARTICLE_RE.finditer(text):
        part = m.group("part")
        if _starts_word(text, m.start()) and (part not in _FUNCTION_WORDS or part in _PARTICLE_FUNCTION_WORDS):
            got = _clip(text, m.start("name"), m.end("name"), 2)
            if got is not None:
                yield got[0], got[1], 0.85
    for m in _CONTEXT_RE.finditer(text):
        kin = m.group("trig") in _KIN_FORMS
        got = _clip(text, m.start("name"), m.end("name"), 1 if kin else 0)
        if got is not None:
            yield got[0], got[1], 0.85 if kin else 0.8
    for m in _DASH_RE.finditer(text):
        if not _starts_word(text, m.start()) or (m.start() and not text[m.start() - 1].isspace()):
            continue
        got = _clip(text, m.start("name"), m.end("name"), 0)
        if got is not None and got[1] == m.end("name"):
            yield got[0], got[1], 0.75
    yield from _list_names(text)
    yield from _shape_names(text)
    if not text.isascii() and _ANY_SCRIPT.search(text):
        yield from _script_names(text)
    for m in _APPOS_TAIL_RE.finditer(text):
        e = m.start()
        back = _APPOS_NAME_RE.search(text, max(0, e - 80), e)
        if back is None or not _starts_word(text, back.start()):
            continue
        got = _clip(text, back.start(), e, 0)
        if got is not None and got[1] == e:
            yield got[0], got[1], 0.8


# --- names with more evidence in their own shape ---------------------------------------------------------
# letters of other scripts (a name's words are runs of one script; combining marks belong to Devanagari words)
_SCRIPTS = {
    "han": "\u3400-\u4dbf\u4e00-\u9fff\u3040-\u30ff\uac00-\ud7af",
    "cyrillic": "\u0400-\u04ff",
    "greek": "\u0370-\u03ff\u1f00-\u1fff",
    "arabic": "\u0620-\u064a\u064b-\u065f\u066e-\u06d3",
    "devanagari": "\u0900-\u0963\u0971-\u097f",
}
_SCRIPT_RUN = re.compile(
    "|".join(
        # Han, kana, Hangul: 2-4 characters, or two such words ("王 丽华"); alphabets: 1-3 words of 2+ letters.
        # Each branch starts with its letters (the engine skips to them fast); word edges are checked after.
        rf"[{c}]{{2,4}}(?: [{c}]{{1,3}})?(?![\w-])"
        if k == "han"
        else rf"[{c}]{{2,20}}(?: [{c}]{{2,20}}){{0,2}}(?![\w-])"
        for k, c in _SCRIPTS.items()
    )
)
_ANY_SCRIPT = re.compile(f"[{''.join(_SCRIPTS.values())}]")
# a trigger just before a name of another script: a title, a relative, a role or an introducing phrase
_TRIGGER_TAIL = re.compile(
    rf"(?<![\w.@'’-])(?:{_alt(_TITLES)}|{_alt(_KIN + _ROLES + _INTRO, fold_first=True)})"
    r"(?:,? ?|: ?| \(| - | – |(?<=,)\n| is | was )(?:(?:[Tt]he|[Hh]is|[Hh]er|[Tt]heir) )?\Z"
)
# "L. te Trunoumov", "A. de la Cruz", "S. bin Rahim": an initial, a lower-case particle, a capitalised word
# (or an elided particle: "C. d'Aubigné", "K. al-Rashid")
_INITIAL_PARTICLE_RE = re.compile(
    rf"[{_U}]\. ?(?:(?:{_PART} )+|(?=[dl]['’][{_U}]|[ae]l-[{_U}])){_WORD}(?: {_WORD})?{_END}"
)
# "Present: Dr A. Byrne, Tomasz Wójcik (pharmacist) and Prof. Adeyemi": attendance lists name people
# found from their colon (a one-character search is the fastest there is); the words before are checked after
_COLON = re.compile(":")
_LIST_HEAD_RE = re.compile(
    r"(?:[Pp]resent(?:i|es)?|[Aa]ttendees|[Ii]n attendance|[Pp]articipants|[Aa]nwesend|[Tt]eilnehmer|[Pp]résents|"
    r"[Aa]siste[n]?|[Aa]anwezig|[Dd]istribution|[Cc]opies to|[Cc]c)(?: were)? ?\Z"
)
_LIST_ITEM_RE = re.compile(
    rf"(?:(?P<title>{_alt(_TITLES)})(?: (?:{_alt(_SECOND_TITLES)}))? )?(?P<name>{_NAME})(?: \([^()\n]{{1,40}}\))?"
    r"(?P<sep>, | and | & | und | et | y | e | en )?"
)
# "52-year-old Joușeřur", "71yo Pravoslav": an age, then a capitalised word that is not a description
_AGE_RE = re.compile(
    # the unit's first letter as a consuming class (fast to skip to); the number before is checked in Python
    r"(?:y(?:ear-old|ear old|r-old|r old|o|/o|\.o\.)|j(?:ährige[rn]?|arige)|a(?:ns|ños|nni)) "
    rf"(?P<name>{_WORD}(?: {_WORD})?){_END}"
)
_AGE_NUMBER_BEFORE = re.compile(r"(?<![\w.,])\d{1,3}[ -]?\Z")
_NOT_AFTER_AGE = frozenset(
    """Caucasian White Black Asian Hispanic Latino Latina African European Indian Chinese Arab Jewish Muslim
    Christian Afro Native Nordic Gravida Primigravida Multigravida Para Retired Former Known Previously
    Right Left Handed Smoker Nonsmoker Diabetic Hypertensive Obese Frail Independent Alert Married Single
    Divorced Widowed Homeless Unemployed Student Farmer Teacher Engineer Builder Lawyer Veteran""".split()
)


_LATIN_WORD = re.compile(r"(?<![\w<])[A-Za-z]{2,}(?![\w>])")


def _script_names(text: str) -> Iterator[tuple[int, int, float]]:
    """Names in other scripts: after a trigger word, or standing alone in Latin-script prose (a short run of
    Han, Cyrillic, Greek, Arabic or Devanagari letters there is a name far more often than anything else)."""
    for m in _SCRIPT_RUN.finditer(text):
        s, e = m.start(), m.end()
        if s and (text[s - 1].isalnum() or text[s - 1] in "-_"):
            continue
        before = text[max(0, s - 48) : s]
        cut = max(before.rfind(". "), before.rfind("\n\n"))
        if cut >= 0:
            before = before[cut + 1 :]
        if _TRIGGER_TAIL.search(before.lstrip()) or _TRIGGER_TAIL.search(before):
            yield s, e, 0.85
            continue
        # alone: only in a line (one cell) of Latin-script prose, counted in plain words (placeholders such as
        # <PERSON> and tokens left by protection are no prose: a protected Hindi note stays Hindi)
        ls = text.rfind("\n", 0, s) + 1
        le = text.find("\n", e)
        line = text[ls : le if le >= 0 else len(text)]
        latin = sum(map(len, _LATIN_WORD.findall(line)))
        if latin >= 20 and latin >= 2 * len(_ANY_SCRIPT.findall(line)):
            yield s, e, 0.7


def _list_names(text: str) -> Iterator[tuple[int, int, float]]:
    for colon in _COLON.finditer(text):
        c = colon.start()
        head = _LIST_HEAD_RE.search(text, max(0, c - 22), c)
        if head is None or (head.start() and text[head.start() - 1].isalnum()):
            continue
        pos = c + 1 + (text[c + 1 : c + 2] == " ")
        for _ in range(12):
            m = _LIST_ITEM_RE.match(text, pos)
            if m is None or not _starts_word(text, m.start("name")):
                break
            got = _clip(text, m.start("name"), m.end("name"), 2 if m.group("title") else 0)
            if got is None:
                break
            yield got[0], got[1], 0.8
            if not m.group("sep"):
                break
            pos = m.end()


def _shape_names(text: str) -> Iterator[tuple[int, int, float]]:
    for m in _INITIAL_PARTICLE_RE.finditer(text):
        if m.start() and (text[m.start() - 1].isalnum() or text[m.start() - 1] in "._"):
            continue
        got = _clip(text, m.start(), m.end(), 0)
        if got is not None:
            yield got[0], got[1], 0.8
    for m in _AGE_RE.finditer(text):
        if not _AGE_NUMBER_BEFORE.search(text, max(0, m.start() - 6), m.start()):
            continue
        if m.group("name").split()[0] in _NOT_AFTER_AGE:
            continue
        got = _clip(text, m.start("name"), m.end("name"), 0)
        if got is not None:
            yield got[0], got[1], 0.7


# a cell that is a name by its shape alone (for columns whose name says they hold people)
_CELL_NAME = re.compile(
    rf"(?:{_alt(_TITLES)} )?(?:{_RUN}|{_COMMA}|[{_U}]{{2,}}(?: [{_U}]{{2,}})*,? {_WORD})"
    rf"|{_SCRIPT_RUN.pattern}"
)


def name_shaped_cells(values: Any) -> Any:
    """Boolean numpy mask: cells that are a name by shape (two or more name words, or a name in another script)."""
    import numpy as np

    out = np.zeros(len(values), dtype=bool)
    for i, v in enumerate(values.tolist()):
        if not isinstance(v, str) or not (3 <= len(v) <= 80):
            continue
        if _CELL_NAME.fullmatch(v) is None:
            continue
        if v.isascii() and " " not in v.strip() and "," not in v:
            continue  # one Latin word: a category or a code as often as a name
        words = v.replace(",", " ").split()
        if any(w in _HARD_STOP or w in _SOFT_STOP for w in words):
            continue
        out[i] = True
    return out


def refine_model_span(text: str, start: int, end: int) -> tuple[int, int] | None:
    """A PERSON span from a statistical model, held to the same shape evidence as a name found by position:
    no digits ("Lasix 40"), no grammar, clinical or title words at its start ("Der Patient", "Seen"), never a
    facility or an eponym ("Murphy's sign", "Guillain-Barré syndrome"); None when nothing is left."""
    words = [(m.start(), m.end()) for m in _NONSPACE.finditer(text, start, end)]
    while words and any(ch.isdigit() for ch in text[words[0][0] : words[0][1]]):
        words.pop(0)  # "71yo Pravoslav"
    while words and any(ch.isdigit() for ch in text[words[-1][0] : words[-1][1]]):
        words.pop()  # "Lasix 40"
    if not words or any(ch.isdigit() for ch in text[words[0][0] : words[-1][1]]):
        return None
    start, end = words[0][0], words[-1][1]
    if text[start:end].split()[0].rstrip(".") in _PLACE_PREFIX or _FACILITY_BEFORE.search(
        text, max(0, start - 7), start
    ):
        return None  # "St Thomas' Ward"
    return _clip(text, start, end, 0)


_PLACE_PREFIX = frozenset({"St", "Saint", "Santa", "San", "Mount", "Mt", "Fort", "Lake", "Port"})
