"""How each metric of the catalogue may be added up, and in which unit it is counted.

A figure is only worth publishing if adding it up means something. People trained in two
trainings add up; the countries two activities assisted do not (they may be the same
countries), and neither do two cumulative headline figures of one programme. Every metric of
``events/reference/metrics.json`` therefore declares its ``aggregate`` rule:

- ``sum``: added across activities (people trained, seizures, participants);
- ``max``: a headline figure that several activities report cumulatively; the largest stands
  for all, and names the activity that reported it;
- ``none``: never added across activities (distinct counts such as countries assisted); the
  answer lists each activity's figure instead of a total.

A metric may also be another metric in another unit (``same_as`` and an integer ``factor``):
``cocaine_seized_tons`` is ``cocaine_seized_kg`` times 1,000. Events keep the figure as
reported; the fold counts it under the canonical metric, exactly, in integer millionths.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Literal

from events.reference import load_reference

__all__ = ["RULES", "Aggregate", "MetricRule", "metric_rules", "rule_of", "unsummed_metrics"]

Aggregate = Literal["sum", "max", "none"]

RULES: tuple[Aggregate, ...] = ("sum", "max", "none")


@dataclass(frozen=True)
class MetricRule:
    """One metric's rule: what it counts as, and how that adds up."""

    name: str
    """The metric as reported."""
    canonical: str
    """The metric it is counted as (itself, unless it is another's unit)."""
    factor: int
    """Canonical units per reported unit (1 unless the units differ)."""
    aggregate: Aggregate
    """The canonical metric's rule."""
    unit: str
    """The canonical metric's unit, e.g. ``kg``."""


@functools.cache
def unsummed_metrics() -> frozenset[str]:
    """The metrics whose figures are never added up: rule ``max`` or ``none``."""
    return frozenset(name for name, rule in metric_rules().items() if rule.aggregate != "sum")


@functools.cache
def metric_rules() -> dict[str, MetricRule]:
    """Every catalogue metric's rule, by the name it is reported under.

    :raises ValueError: when the catalogue is inconsistent (an unknown rule, a ``same_as``
        naming no metric or one that is itself another's unit, a factor that is not a
        positive integer); the tests read the catalogue, so it fails there first.
    """
    entries = load_reference().metrics
    rules: dict[str, MetricRule] = {}
    for name, entry in entries.items():
        detail: dict[str, object] = dict(entry.detail)
        canonical = str(detail.get("same_as", name))
        factor = detail.get("factor", 1)
        target = entries.get(canonical)
        if target is None or (canonical != name and "same_as" in target.detail):
            raise ValueError(f"metric {name}: same_as {canonical!r} is no canonical metric")
        if not isinstance(factor, int) or isinstance(factor, bool) or factor < 1:
            raise ValueError(f"metric {name}: factor {factor!r} is not a positive integer")
        aggregate = target.detail.get("aggregate", "sum")
        if aggregate not in RULES:
            raise ValueError(f"metric {canonical}: aggregate {aggregate!r} is not one of {RULES}")
        rules[name] = MetricRule(
            name, canonical, factor, aggregate, str(target.detail.get("unit", ""))
        )
    return rules


def rule_of(metric: str) -> MetricRule:
    """The rule of ``metric``; a name the catalogue lacks (an event older than a change of the
    catalogue) is summed as itself."""
    found = metric_rules().get(metric)
    return found if found is not None else MetricRule(metric, metric, 1, "sum", "")
