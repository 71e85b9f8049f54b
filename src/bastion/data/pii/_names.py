"""Bundled name dictionaries (first and last names from many cultures) and the words that look like names
but usually are not (months, places, common words)."""

from __future__ import annotations

from functools import lru_cache
from importlib import resources

__all__ = ["AMBIGUOUS", "NOT_NAMES", "TITLES", "first_names", "last_names"]

TITLES = frozenset(
    "Mr Mrs Ms Miss Mx Dr Prof Sir Madam Mister Herr Frau Mme Mlle Monsieur Madame Señor Señora Sr Sra".split()
)

# Capitalised words that start sentences or name things, never taken as names on their own.
NOT_NAMES = frozenset(
    """The A An And Or But If In On At To For Of By With From As Is It Its This That These Those He She
    They We You I His Her Their Our My Your Please Thanks Thank Dear Hi Hello Patient Patients Client Customer
    Called Call Spoke Met Seen Saw Visited Contact Contacted Note Notes Follow Follow-up Reported Reports Complains
    Denies Review Reviewed Plan Discussed Phone Email Address Lives Lived Moved Born Card Account Bank IBAN SSN
    Date Dob Mrn Record Chart Appointment Visit Today Tomorrow Yesterday Monday Tuesday Wednesday Thursday Friday
    Saturday Sunday January February March April June July August September October November December
    Street Road Avenue Lane Drive Court Way Place Suite Apt North South East West Main Hospital Clinic Center
    Centre Department Dept Unit Ward Room Doctor Nurse Mother Father Wife Husband Son Daughter Brother Sister
    Family Emergency Insurance Claim Payment Refund Transfer Order Invoice Ticket Case Issue Update Server Login
    Version Release Build Python Java Windows Linux Mac Apple Google Microsoft Amazon Visa Mastercard Amex
    Discover Paypal No Yes Not None New Old Also Then When After Before During Per Via Re Fw Subject Regards
    Best Kind Sincerely Team Support Service Office Home Work Mobile Cell Tel Fax Web Website Url Link
    United States America Kingdom Germany France Spain Italy Canada Mexico India China Japan Europe English
    Zip Postal Code City State Country County Blood Pressure Pain Fever Medication Dose Prescribed Diagnosis
    Allergy Allergies History Exam Lab Labs Results Test Tests Scan Mri Ct Xray Er Icu Or Pt Dx Rx Tx Hx
    Will Can May Might Must Should Would Could Shall Do Does Did Has Have Had Was Were Be Been Being Are
    Mon Tue Wed Thu Fri Sat Sun Jan Feb Mar Apr Jun Jul Aug Sep Sept Oct Nov Dec Ok Okay""".split()
)

# Dictionary names that are also everyday words or places: only names with other evidence.
AMBIGUOUS = frozenset(
    """Mark Bill Will Grant Hope Faith Joy Grace Rose Lily Daisy Iris Ivy Dawn Summer Autumn Winter April May June
    August Chase Dean Drew Frank Guy Hunter Jack Lane Major Miles Rich Ray Reed Rock Sky Storm Sunny Wade Young
    Long Brown Green White Black Gray Grey King Page Price Bell Hill Wood Woods Stone Rivers Lake Field Fields
    Street Church Cook Baker Carter Mason Miller Smith Taylor Walker Paris London Berlin Florence Austin Dallas
    Houston Jordan Phoenix Sydney Victoria Chelsea Georgia Virginia Carolina Dakota Washington Lincoln Madison
    Jackson Charlotte Orlando Denver Cleveland Trinity Justice Liberty Patience Harmony Melody Angel Star Sterling
    Royal Prince Princess Duke Earl Baron Christian Al Art Pat Sue Don Ben Sam Max Will Gene Bud Buck Cash
    Penny Ruby Amber Crystal Jade Pearl Opal Coral Olive Ginger Honey Candy Precious Ocean River Forest Brook
    Early Late Best More Less Love Hall Short Little Gross Good Small Strong Sharp Wise Moody Bright Cross
    Marsh Banks Barns Moss Snow Frost Rain Shine Day Knight Night Friday Monday Major General Judge""".split()
)


@lru_cache(maxsize=1)
def first_names() -> frozenset[str]:
    """Bundled first names (Title case)."""
    return _load("first_names.txt")


@lru_cache(maxsize=1)
def last_names() -> frozenset[str]:
    """Bundled last names (Title case)."""
    return _load("last_names.txt")


def _load(filename: str) -> frozenset[str]:
    text = resources.files("bastion.data.pii").joinpath("names", filename).read_text(encoding="utf-8")
    return frozenset(line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#"))
