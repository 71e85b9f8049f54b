"""Default protection leaves no name verbatim, for names no dictionary holds (made here from syllables, in
Latin and other scripts), written in the shapes that used to leak: particles after initials, lists, sign-offs,
lone names that only row linkage can find, names in other scripts."""

from __future__ import annotations

import random

import pandas as pd

from bastion.data.protect import protect

_ON = ("b", "d", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z", "tr", "kl", "sh")
_VO = ("a", "e", "i", "o", "u", "ou", "ai", "é", "ø")


def _w(rng: random.Random) -> str:
    return ("".join(rng.choice(_ON) + rng.choice(_VO) for _ in range(rng.randint(2, 3))) + rng.choice("nrlsx")).title()


def _table(rows: int = 24) -> tuple[pd.DataFrame, list[list[str]]]:
    rng = random.Random(4242)
    patients, notes, names = [], [], []
    han = "王李张刘陈杨黄赵吴周伟芳娜秀敏静"
    cyr = "каролинаевмиштобу"
    for i in range(rows):
        g, s = _w(rng), _w(rng)
        part = rng.choice(("te ", "van der ", "de la ", "bin ", ""))
        patient = f"{g} {part}{s}" if i % 6 else "".join(rng.choice(han) for _ in range(3))
        rel = f"{_w(rng)} {_w(rng)}"
        doc = _w(rng)
        script = " ".join("".join(rng.choice(cyr) for _ in range(n)).title() for n in (6, 7))
        k = i % 4
        if i % 6 == 0:
            note = f"Patient {patient} seen with an interpreter. Son {script} present."
            who = [patient, script]
        elif k == 0:
            note = f"Dhr. {g[0]}. {part}{s} reviewed. Present: Dr {doc}, {rel} (pharmacist) and Prof. {_w(rng)}."
            who = [f"{part}{s}".split()[-1], doc, rel]
        elif k == 1:
            note = f"{g} says the pain is better today. Plan home.\nYours sincerely,\n{rel}\nConsultant"
            who = [g, rel]
        elif k == 2:
            note = f"MDT {s.upper()}, {g}. Family: daughter {rel.split()[0]} visiting. — {doc[0]}. {doc}, RN"
            who = [s.upper(), g, rel.split()[0], doc]
        else:
            note = f"Bed {i} – {g} {part}{s} ({rng.randint(20, 90)}). Handed over to SN {rel.split()[0]}."
            who = [g, s, rel.split()[0]]
        patients.append(patient)
        notes.append(note)
        names.append(who)
    return pd.DataFrame({"patient": patients, "notes": notes}), names


def test_default_protect_leaves_no_name_verbatim(keyring) -> None:
    df, names = _table()
    out, rep = protect(df, None, keyring=keyring)
    for i, who in enumerate(names):
        for name in who:
            assert name not in out["notes"][i], (name, out["notes"][i])
        assert df["patient"][i] not in out["patient"][i]
    assert rep.residual_identifiers == 0


def test_a_particle_of_a_patient_s_name_is_not_linked_on_its_own(keyring) -> None:
    rng = random.Random(77)
    people = [f"{_w(rng)} de la {_w(rng)}" for _ in range(24)]
    notes = [f"Paciente: {p}. Ingreso desde Urgencias del Hospital La Paz." for p in people]
    out, rep = protect(pd.DataFrame({"patient": people, "notes": notes}), None, keyring=keyring)
    assert all(n.endswith("Hospital La Paz.") and p.split()[-1] not in n for p, n in zip(people, out["notes"]))
    assert rep.residual_identifiers == 0


def test_names_in_caseless_scripts_are_linked_exactly(keyring) -> None:
    # Han and Devanagari names have no capitals to start from and (Han) no spaces to end at: the row's own
    # name is found again as written, with no transliteration, even where no detector sees it
    rng = random.Random(5)
    han = "王李张刘陈杨黄赵吴周伟芳娜秀敏静丽强磊军"
    deva = ("रा", "जे", "श", "कु", "मा", "सु", "नी", "ता", "वि", "दे")
    people = ["".join(rng.sample(han, 3)) for _ in range(15)]
    people += [" ".join("".join(rng.choice(deva) for _ in range(3)) for _ in range(2)) for _ in range(15)]
    notes = [f"患者{p}今天好转。" if i < 15 else f"रोगी {p} ठीक है" for i, p in enumerate(people)]
    out, rep = protect(pd.DataFrame({"patient": people, "notes": notes}), None, keyring=keyring)
    for p, n in zip(people, out["notes"], strict=True):
        assert all(w not in n for w in p.split()), n
    assert out["notes"][0] == "患者<PERSON>今天好转。"
    assert rep.residual_identifiers == 0
