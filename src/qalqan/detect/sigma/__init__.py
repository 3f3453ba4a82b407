"""Sigma rules over event batches: load with pySigma, compile once to Polars, route, prefilter,
match.

``loader`` reads rule files and lists what cannot be used; ``logsource`` decides which rules
apply to which rows; ``compiler`` and ``nodes`` turn a rule's condition into Polars tests;
``prefilter`` drops rules whose literals a batch does not hold; ``engine`` ties them together.
"""

from qalqan.detect.sigma.engine import CompiledRule, SigmaEngine
from qalqan.detect.sigma.loader import AppliedFilter, RuleInfo, RuleSet, SkippedRule, load_rules
from qalqan.detect.sigma.logsource import LogSource

__all__ = [
    "AppliedFilter",
    "CompiledRule",
    "LogSource",
    "RuleInfo",
    "RuleSet",
    "SigmaEngine",
    "SkippedRule",
    "load_rules",
]
