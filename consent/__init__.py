"""Purposes, consent signals and the decision function. Imports neither gateway nor profiles."""

from consent._decision import Action, Decision, Jurisdiction, decide
from consent._purposes import GPC_REFUSED, PURPOSES, Purpose, required_purposes
from consent._signals import Signals, parse_signals

__all__ = [
    "GPC_REFUSED",
    "PURPOSES",
    "Action",
    "Decision",
    "Jurisdiction",
    "Purpose",
    "Signals",
    "decide",
    "parse_signals",
    "required_purposes",
]
