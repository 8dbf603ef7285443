"""What work costs, from the price of an hour of each hardware class (``FARM_COST_PER_HOUR_<CLASS>``)
and measured speeds; and which classes a scoring job should use to be fast or to be cheap.

Prices are per machine-hour, in whatever currency they are given in. A variant's cost per million
inferences is the price of the hours one machine of its class takes for a million at the
variant's best measured throughput: ``price_per_hour / 3600 / throughput_per_s * 1e6``.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from enum import Enum

from farm.core.errors import UsageError

SECONDS_PER_HOUR = 3600.0


class Objective(str, Enum):
    TIME = "time"  # every class named, each taking shards as fast as it goes
    COST = "cost"  # the classes that score a row cheapest, and still finish by the deadline


def cost_per_million(price_per_hour: float | None, rows_per_s: float | None) -> float | None:
    """None when the class has no price or the variant no measured throughput."""
    if price_per_hour is None or not rows_per_s:
        return None
    return price_per_hour / SECONDS_PER_HOUR / rows_per_s * 1e6


def cost_of_hours(price_per_hour: float | None, seconds: float) -> float | None:
    return None if price_per_hour is None else price_per_hour * seconds / SECONDS_PER_HOUR


def total_cost(costs: list[float | None]) -> float | None:
    """The sum, known only when every part of it is (and there is one)."""
    if not costs or None in costs:
        return None
    return sum(cost for cost in costs if cost is not None)


@dataclass(frozen=True)
class ClassOffer:
    """One hardware class as a scoring job could use it: its serving variant's measured speed."""

    hardware: str
    rows_per_s: float  # the variant's best benchmark throughput, one machine
    price_per_hour: float | None


@dataclass(frozen=True)
class Plan:
    classes: list[str]  # those that score, in the order named
    seconds: float | None  # estimated: the rows over the chosen classes' summed speed; None: unmeasured
    cost: float | None  # estimated: every chosen machine held until the job ends; None without prices
    left_out: dict[str, str]  # class -> why it does not score

    def summary(self) -> str:
        if self.seconds is None:
            return "no estimate: a variant was never benchmarked"
        cost = f" and {money(self.cost)}" if self.cost is not None else ""
        return f"about {self.seconds:,.0f} s{cost} at the measured speeds, one machine per class"


def plan_classes(
    offers: list[ClassOffer], rows: int, objective: Objective, deadline_s: float | None
) -> Plan:
    """The classes that score a job of ``rows`` rows.

    The lanes split the shards by speed so that every class finishes about together (see
    workers/scoring.py): a set of classes takes rows / (their summed speed), and holds each of
    its machines that long. ``time`` takes every class; ``cost`` the set with the least cost
    that finishes by ``deadline_s`` (all sets are tried: there are at most a few classes).
    """
    if objective is Objective.COST:
        refuse_unpriced({offer.hardware: offer.price_per_hour for offer in offers})
    unmeasured = [offer.hardware for offer in offers if offer.rows_per_s <= 0]
    if unmeasured and objective is Objective.TIME and deadline_s is None:  # nothing to estimate for
        return Plan([offer.hardware for offer in offers], None, None, {})
    if unmeasured:
        raise UsageError(
            f"no measured throughput for {', '.join(unmeasured)}: its variant was never benchmarked, "
            "so no estimate is possible (convert the model again with --force)"
        )
    candidates = [_estimate(list(chosen), rows) for chosen in _subsets(offers, objective)]
    in_time = [plan for plan in candidates if deadline_s is None or _seconds(plan) <= deadline_s]
    if not in_time:
        fastest = min(candidates, key=_seconds)
        raise UsageError(
            f"--deadline {deadline_s:g} s: even {','.join(fastest.classes)} need {fastest.summary()}: "
            "give a later deadline, or more classes with --hw"
        )
    best = min(in_time, key=lambda plan: (plan.cost or 0.0, _seconds(plan)))
    left_out = {o.hardware: _why_left_out(o, best, rows) for o in offers if o.hardware not in best.classes}
    return Plan(best.classes, best.seconds, best.cost, left_out)


def refuse_unpriced(prices: dict[str, float | None]) -> None:
    """``--objective cost`` weighs every class named by its price: each must have one."""
    unpriced = [hardware for hardware, price in prices.items() if price is None]
    if unpriced:
        variables = ", ".join(f"FARM_COST_PER_HOUR_{hw.upper()}" for hw in unpriced)
        raise UsageError(f"--objective cost needs a price for every class of --hw: set {variables}")


def _subsets(offers: list[ClassOffer], objective: Objective) -> list[tuple[ClassOffer, ...]]:
    if objective is Objective.TIME:
        return [tuple(offers)]
    return [chosen for size in range(1, len(offers) + 1) for chosen in itertools.combinations(offers, size)]


def _estimate(chosen: list[ClassOffer], rows: int) -> Plan:
    seconds = rows / sum(offer.rows_per_s for offer in chosen)
    cost = total_cost([cost_of_hours(offer.price_per_hour, seconds) for offer in chosen])
    return Plan([offer.hardware for offer in chosen], seconds, cost, {})


def _seconds(plan: Plan) -> float:
    return plan.seconds if plan.seconds is not None else float("inf")


def _why_left_out(offer: ClassOffer, chosen: Plan, rows: int) -> str:
    """Only the cost objective leaves classes out, so every class has a price here."""
    own = (offer.price_per_hour or 0.0) / offer.rows_per_s
    theirs = (chosen.cost or 0.0) / rows * SECONDS_PER_HOUR
    return f"{own / theirs:.1f}x the cost per row" if theirs > 0 else "not needed"


def money(amount: float) -> str:
    """A cost in the prices' own currency: cents while it is large, more figures while small."""
    return f"{amount:,.2f}" if amount >= 1 else f"{amount:.4g}"
