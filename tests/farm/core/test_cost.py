"""Costs and the choice of classes, with two classes at given prices and measured speeds."""

from __future__ import annotations

import pytest

from farm.core.cost import ClassOffer, Objective, cost_per_million, plan_classes
from farm.core.errors import UsageError

# A cheap slow class and a dear fast one: cpu costs 0.10 an hour and scores 1,000 rows/s; gpu
# costs 2.50 and scores 20,000. Per row the cpu is cheaper (0.10/1,000 < 2.50/20,000).
CPU = ClassOffer("cpu", 1_000.0, 0.10)
GPU = ClassOffer("gpu", 20_000.0, 2.50)
ROWS = 1_000_000


def test_cost_per_million_is_the_price_of_the_hours_a_million_take() -> None:
    assert cost_per_million(2.50, 20_000.0) == pytest.approx(2.50 * (1e6 / 20_000.0) / 3600)
    assert cost_per_million(None, 20_000.0) is None  # no price: no cost shown
    assert cost_per_million(2.50, None) is None and cost_per_million(2.50, 0.0) is None


def test_time_takes_every_class_and_estimates_their_summed_speed() -> None:
    plan = plan_classes([CPU, GPU], ROWS, Objective.TIME, None)
    assert plan.classes == ["cpu", "gpu"] and plan.left_out == {}
    assert plan.seconds == pytest.approx(ROWS / 21_000.0)
    assert plan.cost == pytest.approx((0.10 + 2.50) * plan.seconds / 3600)  # both held to the end


def test_cost_without_a_deadline_takes_the_cheapest_class_per_row() -> None:
    plan = plan_classes([CPU, GPU], ROWS, Objective.COST, None)
    assert plan.classes == ["cpu"]
    assert plan.seconds == pytest.approx(1_000.0) and plan.cost == pytest.approx(0.10 * 1_000.0 / 3600)
    ratio = (2.50 / 20_000.0) / (0.10 / 1_000.0)
    assert plan.left_out == {"gpu": f"{ratio:.1f}x the cost per row"}


def test_cost_with_a_deadline_adds_what_it_must_and_no_more() -> None:
    # 1,000 s on the cpu alone is too late; the gpu alone (50 s) or both (47.6 s) are in time,
    # and both cost less than the gpu alone: the cpu's rows are cheaper.
    plan = plan_classes([CPU, GPU], ROWS, Objective.COST, deadline_s=60.0)
    alone = 2.50 * (ROWS / 20_000.0) / 3600
    assert plan.classes == ["cpu", "gpu"] and plan.cost is not None and plan.cost < alone
    assert plan.seconds == pytest.approx(ROWS / 21_000.0)
    # A deadline the cpu meets alone keeps it alone.
    assert plan_classes([CPU, GPU], ROWS, Objective.COST, deadline_s=1_000.0).classes == ["cpu"]


def test_a_deadline_no_choice_can_meet_is_refused_with_the_best_estimate() -> None:
    with pytest.raises(UsageError, match=r"--deadline 10 s: even cpu,gpu need about 48 s and 0\.0"):
        plan_classes([CPU, GPU], ROWS, Objective.COST, deadline_s=10.0)
    with pytest.raises(UsageError, match="--deadline 10 s"):
        plan_classes([CPU, GPU], ROWS, Objective.TIME, deadline_s=10.0)


def test_cost_needs_a_price_for_every_class() -> None:
    unpriced = ClassOffer("fpga", 5_000.0, None)
    with pytest.raises(UsageError, match=r"set FARM_COST_PER_HOUR_FPGA$"):
        plan_classes([CPU, unpriced], ROWS, Objective.COST, None)
    plan = plan_classes([CPU, unpriced], ROWS, Objective.TIME, None)
    assert plan.classes == ["cpu", "fpga"] and plan.cost is None  # time: cost simply not shown


def test_an_unbenchmarked_variant_gives_no_estimate_and_cannot_be_costed() -> None:
    unmeasured = ClassOffer("gpu", 0.0, 2.50)
    assert plan_classes([CPU, unmeasured], ROWS, Objective.TIME, None).seconds is None
    with pytest.raises(UsageError, match="no measured throughput for gpu"):
        plan_classes([CPU, unmeasured], ROWS, Objective.COST, None)
