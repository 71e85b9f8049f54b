"""Vulnerability monitoring of model versions: OSV advisories matched against each version's recorded
environment, and re-scans of stored artifacts with today's scanner rules. See ``docs/vulnerabilities.md``.
"""

from __future__ import annotations

from bastion.vulns.check import Match, VersionVulns, VulnReport, check_versions, stored_results
from bastion.vulns.matching import is_affected
from bastion.vulns.osv import SEVERITIES, Advisory, AffectedPackage, normalize_name, parse_record
from bastion.vulns.store import ImportResult, advisory_count, import_advisories

__all__ = [
    "SEVERITIES",
    "Advisory",
    "AffectedPackage",
    "ImportResult",
    "Match",
    "VersionVulns",
    "VulnReport",
    "advisory_count",
    "check_versions",
    "import_advisories",
    "is_affected",
    "normalize_name",
    "parse_record",
    "stored_results",
]
