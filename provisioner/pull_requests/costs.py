"""A planned team's monthly estimate and its change against the request at the base (offline, from
the price table in provisioner/pricing/)."""

from __future__ import annotations

from dataclasses import dataclass

from provisioner.errors import InvalidInput
from provisioner.pull_requests.changes import NEW, REMOVE, RequestChange
from provisioner.pull_requests.notable import parse_old_request
from provisioner.settings import Settings
from provisioner.spec import ResolvedSpec


@dataclass(frozen=True)
class PlannedCost:
    monthly_usd: float | None = None  # the request's estimate; 0 for a removal, None when it cannot be estimated
    monthly_usd_delta: float | None = None  # minus the base's request's estimate; None without a base to compare
    budget_usd_month: int | None = None
    note: str = ""  # why there is no estimate, or that it is over budget


def planned_cost(settings: Settings, change: RequestChange, resolved: dict[str, ResolvedSpec]) -> PlannedCost:
    from provisioner.cost import estimate, load_prices

    old = parse_old_request(change.old_text)
    try:
        prices = load_prices()
        new = None if change.action == REMOVE else estimate(resolved[change.team], prices)
        before = None if old is None else estimate(
            ResolvedSpec(spec=old, region=old.region or settings.region, cidr=""), prices).monthly_usd
    except InvalidInput as exc:
        return PlannedCost(note=f"not estimated: {exc.message}")
    monthly = 0.0 if new is None else new.monthly_usd
    delta = monthly if change.action == NEW else None if before is None else round(monthly - before, 2)
    if new is None:
        return PlannedCost(monthly, delta)
    note = (f"the estimate ${new.monthly_usd:,.2f}/month is over budget_usd_month ${new.budget_usd_month:,}"
            if new.over_budget else "")
    return PlannedCost(monthly, delta, new.budget_usd_month, note)
