"""Drift statistics and verdicts: one interface, numeric and categorical tests, multiple-testing control."""

from bastion.monitor.drift.categorical import ChiSquareTest, JensenShannonTest, categorical_statistics
from bastion.monitor.drift.interface import DriftTest, FeatureDrift, TestResult
from bastion.monitor.drift.multiple import adjust_p_values, benjamini_hochberg, bonferroni
from bastion.monitor.drift.numeric import KSTest, NumericPSITest, WassersteinTest, numeric_statistics
from bastion.monitor.drift.run import DriftReport, compute_drift

__all__ = [
    "ChiSquareTest",
    "DriftReport",
    "DriftTest",
    "FeatureDrift",
    "JensenShannonTest",
    "KSTest",
    "NumericPSITest",
    "TestResult",
    "WassersteinTest",
    "adjust_p_values",
    "benjamini_hochberg",
    "bonferroni",
    "categorical_statistics",
    "compute_drift",
    "numeric_statistics",
]
