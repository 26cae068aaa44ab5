"""A team's monthly cost, estimated from its request and the price table in provisioner/pricing/prices.json.

Pure: no AWS, no state. Each resource that is billed by the hour or by the GB-month is a line
item at 730 hours a month; usage-based charges (serverless inference, NAT data, S3, logs) are
listed as not estimated, never as a silent 0. A price the table lacks is an error that names the
file, the region and the type to add.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from provisioner.components.names import AIRFLOW_INTERNAL_SECRETS
from provisioner.errors import InvalidInput
from provisioner.spec import ResolvedSpec, display_path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
PRICES_FILE = PROJECT_ROOT / "provisioner" / "pricing" / "prices.json"
HOW_TO_UPDATE = "see docs/operations.md, 'Cost estimates', for where the figures come from"
ROOT_VOLUME_GB = 30  # components/airflow_host.ROOT_VOLUME_GB (a test keeps the two equal; that module needs pulumi)
NOTEBOOK_VOLUME_GB = 5  # SageMaker's default notebook volume; the program does not set volume_size
NOT_ESTIMATED = "usage-based: not estimated"


@dataclass(frozen=True)
class RegionPrices:
    """One region's figures from the price table."""

    region: str
    figures: dict[str, Any]
    file: str  # the table's path as shown in errors

    @property
    def as_of(self) -> str:
        return str(self.figures.get("as_of", "unknown"))

    @property
    def source(self) -> str:
        return str(self.figures.get("source", "unknown"))

    def rate(self, key: str) -> float:
        value = self.figures.get(key)
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise InvalidInput(f"{self.file}: regions.{self.region}.{key}: missing or not a number; "
                               f"add the price ({HOW_TO_UPDATE})")
        return float(value)

    def rate_of(self, key: str, kind: str, what: str) -> float:
        table = self.figures.get(key)
        value = table.get(kind) if isinstance(table, dict) else None
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            known = ", ".join(sorted(table)) if isinstance(table, dict) else "none"
            raise InvalidInput(f"{self.file}: regions.{self.region}.{key}: no price for the {what} {kind!r} "
                               f"(priced: {known}); add its hourly price to the table ({HOW_TO_UPDATE})")
        return float(value)


@dataclass(frozen=True)
class PriceTable:
    hours_per_month: float
    regions: dict[str, dict[str, Any]]
    file: str

    def region(self, region: str) -> RegionPrices:
        if region not in self.regions:
            raise InvalidInput(f"{self.file}: region {region!r} is not in the price table (priced: "
                               f"{', '.join(sorted(self.regions))}); add a regions.{region} entry with its "
                               f"as_of date, source and prices ({HOW_TO_UPDATE})")
        return RegionPrices(region, self.regions[region], self.file)


def load_prices(path: Path = PRICES_FILE) -> PriceTable:
    """The price table; InvalidInput naming the file when it is unreadable or malformed."""
    return _load_prices(path.resolve())


@lru_cache(maxsize=4)
def _load_prices(path: Path) -> PriceTable:
    shown = display_path(path, PROJECT_ROOT)  # stable whatever the working directory: the result is cached
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise InvalidInput(f"{shown}: cannot read the price table: {exc.strerror}") from None
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"{shown}: not valid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}") from None
    regions = data.get("regions") if isinstance(data, dict) else None
    hours = data.get("hours_per_month") if isinstance(data, dict) else None
    if not isinstance(regions, dict) or not all(isinstance(v, dict) for v in regions.values()):
        raise InvalidInput(f"{shown}: regions: must map each region name to its prices")
    if not isinstance(hours, (int, float)) or isinstance(hours, bool) or hours <= 0:
        raise InvalidInput(f"{shown}: hours_per_month: must be a positive number (730)")
    return PriceTable(hours_per_month=float(hours), regions=regions, file=shown)


@dataclass(frozen=True)
class LineItem:
    item: str  # what is billed, e.g. "Airflow host"
    detail: str  # how the figure is made, e.g. "m6i.large, 730 h x $0.107/h"
    monthly_usd: float
    note: str = ""  # e.g. "paused", "usage-based: not estimated"


@dataclass(frozen=True)
class Estimate:
    team: str
    region: str
    items: list[LineItem]
    budget_usd_month: int
    paused: bool
    prices_as_of: str
    prices_source: str
    prices_file: str

    @property
    def monthly_usd(self) -> float:
        return round(sum(item.monthly_usd for item in self.items), 2)

    @property
    def over_budget(self) -> bool:
        return self.monthly_usd > self.budget_usd_month

    def to_json(self) -> dict[str, Any]:
        return {"team": self.team, "region": self.region, "monthly_usd": self.monthly_usd,
                "budget_usd_month": self.budget_usd_month, "over_budget": self.over_budget, "paused": self.paused,
                "items": [asdict(item) for item in self.items],
                "prices": {"file": self.prices_file, "as_of": self.prices_as_of, "source": self.prices_source}}


def _usd(amount: float) -> float:
    return round(amount, 2)


def _hourly(item: str, kind: str, count: int, rate: float, hours: float, *, paused: bool) -> LineItem:
    times = f"{count} x " if count != 1 else ""
    detail = f"{times}{kind}, {hours:g} h x ${rate:g}/h"
    if paused:
        return LineItem(item, detail, 0.0, "paused: not running")
    return LineItem(item, detail, _usd(count * rate * hours))


def _storage(item: str, gb: int, rate: float, kind: str) -> LineItem:
    return LineItem(item, f"{gb} GB {kind} x ${rate:g}/GB-month", _usd(gb * rate))


def awake_hours(schedule, hours_per_month: float) -> float:
    """The hours a month a `schedule:` keeps the host (and notebook) running: its weekly hours x weeks a month."""
    weekly = len(schedule.days) * ((schedule.stop[0] * 60 + schedule.stop[1]) - (schedule.start[0] * 60 + schedule.start[1])) / 60
    return round(weekly * hours_per_month / (7 * 24), 1)


def estimate(resolved: ResolvedSpec, prices: PriceTable, *, paused: bool = False) -> Estimate:
    """The monthly line items of one team's request.

    `paused`: the host, notebook and endpoint instances are stopped (cost 0); volumes, the NAT
    gateway and the fixed items are still billed. With a `schedule:`, the host and the notebook are
    billed for its awake hours only.
    """
    spec, region = resolved.spec, prices.region(resolved.region)
    hours = prices.hours_per_month
    host_hours = awake_hours(spec.schedule, hours) if spec.schedule is not None else hours
    gp3 = region.rate("ebs_gp3_gb_month")
    host = spec.airflow.instance_type
    items = [
        _hourly("Airflow host", host, 1, region.rate_of("ec2_hour", host, "EC2 instance type"), host_hours, paused=paused),
        _storage("host root volume", ROOT_VOLUME_GB, gp3, "gp3"),
        _storage("data volume", spec.airflow.volume_gb, gp3, "gp3"),
        LineItem("NAT gateway", f"{hours:g} h x ${region.rate('nat_gateway_hour'):g}/h",
                 _usd(hours * region.rate("nat_gateway_hour")), "hourly only; data processed ($/GB) not counted"),
        LineItem("NAT public IPv4 address", f"{hours:g} h x ${region.rate('public_ipv4_hour'):g}/h",
                 _usd(hours * region.rate("public_ipv4_hour"))),
    ]
    notebook = spec.sagemaker.notebook
    if notebook.enabled:
        rate = region.rate_of("sagemaker_notebook_hour", notebook.instance_type, "SageMaker notebook instance type")
        items.append(_hourly("notebook", notebook.instance_type, 1, rate, host_hours, paused=paused))
        items.append(_storage("notebook volume", NOTEBOOK_VOLUME_GB, region.rate("sagemaker_ml_storage_gb_month"), "ML storage"))
    inference = spec.sagemaker.inference
    if inference.enabled and inference.serverless is not None:
        memory_gb = inference.serverless.memory_mb / 1024
        per_busy_hour = memory_gb * region.rate("sagemaker_serverless_gb_second") * 3600
        items.append(LineItem("serverless endpoint", f"{inference.serverless.memory_mb} MB, "
                              f"${per_busy_hour:.4f} per hour of requests being served", 0.0, NOT_ESTIMATED))
    elif inference.enabled and inference.instance is not None:
        instance = inference.instance
        rate = region.rate_of("sagemaker_inference_hour", instance.type, "SageMaker endpoint instance type")
        line = _hourly("endpoint instances", instance.type, instance.count, rate, hours, paused=paused)
        if instance.autoscaling is not None and instance.autoscaling.max > instance.count and not paused:
            ceiling = _usd(instance.autoscaling.max * rate * hours)
            line = LineItem(line.item, line.detail, line.monthly_usd,
                            f"autoscaling to {instance.autoscaling.max}: up to ${ceiling:.2f}")
        items.append(line)
    items.append(LineItem("KMS key", f"1 key x ${region.rate('kms_key_month'):g}/month", _usd(region.rate("kms_key_month"))))
    secrets = len(spec.secrets) + len(AIRFLOW_INTERNAL_SECRETS)
    items.append(LineItem("secrets", f"{secrets} secrets x ${region.rate('secret_month'):g}/month",
                          _usd(secrets * region.rate("secret_month"))))
    return Estimate(team=spec.team, region=resolved.region, items=items, budget_usd_month=spec.budget_usd_month,
                    paused=paused, prices_as_of=region.as_of, prices_source=region.source, prices_file=prices.file)
