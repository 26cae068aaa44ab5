"""Sandbox alarm evaluation: the sandbox's moto server evaluates its metric alarms as CloudWatch does.

moto 5.2.5 stores alarms and metric data but never evaluates an alarm: every alarm stays "OK" with
"Unchecked: Initial alarm creation" whatever its metric does, so `envctl status` and the owners'
topic would never hear of a missing scheduler heartbeat. In the sandbox's server process
(server_process.py EXTENSIONS calls `install()`), this module

1. makes a new alarm start INSUFFICIENT_DATA and keeps an updated alarm's state, as PutMetricAlarm
   does ("When this operation creates an alarm, the alarm state is immediately set to
   INSUFFICIENT_DATA ... When you update an existing alarm, its state is left unchanged",
   https://docs.aws.amazon.com/AmazonCloudWatch/latest/APIReference/API_PutMetricAlarm.html);
2. every EVALUATE_EVERY_S evaluates each metric alarm of every account and region from the metric
   data moto holds, sets its state through moto's backend (`set_alarm_state`) with a reason in
   CloudWatch's words and reason data (JSON), and, on a transition, publishes CloudWatch's JSON
   notification to the SNS topics among the new state's actions (AlarmActions, OKActions,
   InsufficientDataActions) when the alarm's actions are enabled.

The rules, from the CloudWatch User Guide, "Alarm evaluation" and "Configuring how CloudWatch alarms
treat missing data" (https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/alarm-evaluation.html,
https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/AlarmThatSendsEmail.html#alarms-evaluating-missing-data):

- The metric's data is aggregated per Period (aligned to the period, the last complete period the
  newest) with the alarm's Statistic (SampleCount, Average, Sum, Minimum, Maximum) or
  ExtendedStatistic (pNN, nearest rank over the raw values); only data of the same namespace, name,
  full set of dimensions (and unit, when the alarm names one) counts, as a metric is identified by all
  of its dimensions.
- CloudWatch retrieves more periods than EvaluationPeriods (N), the *evaluation range*; the guide's
  tables use N + 2 (5 for N = 3), and so does the sandbox (CloudWatch's exact range depends on the
  period and the resolution and is not published).
- At least N real datapoints in the range: the most recent N real ones are evaluated and
  TreatMissingData is not consulted. Fewer: every real datapoint is evaluated and only the shortfall is
  filled ("uses missing data points only as few times as possible"): `breaching` fills count as
  breaching, `notBreaching` as not breaching; `missing` and `ignore` evaluate the real ones. No real
  datapoint at all: `breaching` -> ALARM, `notBreaching` -> OK, `missing` (the default) ->
  INSUFFICIENT_DATA, `ignore` -> the state stays.
- ALARM when at least DatapointsToAlarm (M, default N) of the evaluated datapoints breach, else OK;
  and the guide's "premature alarm state" rule: when the range holds no non-breaching datapoint and the
  oldest breaching one among the last N periods is at least M periods old, the alarm goes to ALARM even
  with fewer than M datapoints (`ignore` keeps its state there instead), which reproduces each row of
  the guide's two tables (tests/engines/sandbox/test_alarm_evaluation.py checks them).
- A percentile alarm with EvaluateLowSampleCountPercentile `ignore` keeps its state while a period it
  evaluates has fewer than 10/(1-p) samples (p >= 0.5) or 10/p (p < 0.5).
- Metric-math alarms (Metrics): the queries' metrics are aggregated per period as above and the
  expression that returns data is evaluated per period with + - * /, comparisons and IF(c, a, b) (the
  endpoint 5XX rate's `IF(invocations > 0, 100 * errors / invocations, 0)`); a period in which a
  referenced metric has no data is missing. Any other expression, anomaly-detection bands
  (ThresholdMetricId) and Metrics Insights queries are not evaluated: such an alarm stays
  INSUFFICIENT_DATA with a reason that says so.

Where the sandbox differs from CloudWatch: it evaluates every 15 s rather than every minute; composite
alarms are not evaluated (moto has no composite alarm model beyond `rule`); EC2 and Auto Scaling actions
are not run (only SNS topics are notified), and the AWS/* metrics exist only when something puts them.

In tests' in-process servers (`load_extensions()` without a ServerProcess), `install()` only changes
PutMetricAlarm's initial state: tests call `evaluate_all(now)` themselves, deterministically.
"""

from __future__ import annotations

import ast
import json
import logging
import math
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Iterable

log = logging.getLogger(__name__)

EVALUATE_EVERY_S = 15.0
EXTRA_PERIODS = 2  # the evaluation range is EvaluationPeriods + this (the guide's tables: 5 for 3)
OK, ALARM, INSUFFICIENT = "OK", "ALARM", "INSUFFICIENT_DATA"
MISSING_TREATMENTS = ("breaching", "notBreaching", "ignore", "missing")

_COMPARISONS: dict[str, tuple[Callable[[float, float], bool], str]] = {
    "GreaterThanOrEqualToThreshold": (lambda v, t: v >= t, "greater than or equal to"),
    "GreaterThanThreshold": (lambda v, t: v > t, "greater than"),
    "LessThanThreshold": (lambda v, t: v < t, "less than"),
    "LessThanOrEqualToThreshold": (lambda v, t: v <= t, "less than or equal to"),
}
_STATISTICS = ("SampleCount", "Average", "Sum", "Minimum", "Maximum")


class Unsupported(Exception):
    """What the sandbox does not evaluate: the alarm stays INSUFFICIENT_DATA with this as its reason."""


@dataclass(frozen=True)
class Datapoint:
    start: datetime  # naive UTC, the period's start (CloudWatch's datapoint timestamp)
    value: float | None  # None: missing
    low_sample: bool = False


@dataclass(frozen=True)
class Verdict:
    state: str | None  # None: the alarm keeps its state
    reason: str
    reason_data: dict[str, Any]


# ----------------------------------------------------------------------------------- the metric data


def _naive_utc(moment: Any) -> datetime:
    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment.replace("Z", "+00:00"))
    if isinstance(moment, (int, float)):
        moment = datetime.fromtimestamp(moment, tz=timezone.utc)
    if moment.tzinfo is not None:
        moment = moment.astimezone(timezone.utc).replace(tzinfo=None)
    return moment


def _dimension_set(dimensions: Iterable[Any]) -> frozenset[tuple[str, str]]:
    return frozenset((d.name, d.value) for d in dimensions)


def _matching(data: Iterable[Any], namespace: str, name: str, dimensions: Iterable[Any], unit: str | None) -> list[Any]:
    wanted = _dimension_set(dimensions)
    return [datum for datum in data
            if datum.namespace == namespace and datum.name == name and _dimension_set(datum.dimensions) == wanted
            and (not unit or datum.unit == unit)]


def _percentile(spec: str) -> float:
    try:
        value = float(spec[1:])
    except ValueError:
        raise Unsupported(f"the sandbox does not evaluate the extended statistic {spec!r} (only pNN)") from None
    if not spec.startswith("p") or not 0 <= value <= 100:
        raise Unsupported(f"the sandbox does not evaluate the extended statistic {spec!r} (only pNN)")
    return value


def aggregate(datums: list[Any], statistic: str) -> tuple[float | None, bool]:
    """The statistic of one period's datums (None without any) and whether a percentile had too few
    samples to be significant (the guide's 10/(1-p) rule)."""
    raw = [d.value for d in datums if hasattr(d, "value")]
    sets = [d for d in datums if not hasattr(d, "value")]
    count = len(raw) + sum(s.sample_count for s in sets)
    if not count:
        return None, False
    if statistic == "SampleCount":
        return float(count), False
    total = sum(raw) + sum(s.sum for s in sets)
    if statistic == "Sum":
        return total, False
    if statistic == "Average":
        return total / count, False
    if statistic == "Minimum":
        return min(raw + [s.min for s in sets]), False
    if statistic == "Maximum":
        return max(raw + [s.max for s in sets]), False
    percent = _percentile(statistic)
    # Percentiles need raw values; a statistic set is usable when its values are all one (SampleCount 1, Min = Max).
    values = sorted(raw + [s.min for s in sets if s.sample_count == 1 or s.min == s.max
                           for _ in range(int(s.sample_count))])
    if not values:
        return None, False
    rank = max(1, math.ceil(percent / 100 * len(values)))
    fraction = percent / 100
    needed = 10 / (1 - fraction) if fraction >= 0.5 and fraction < 1 else (10 / fraction if fraction > 0 else 0)
    return values[rank - 1], len(values) < needed


def _periods(now: datetime, period: int, count: int) -> list[datetime]:
    """The starts of the last `count` complete periods, oldest first."""
    epoch = datetime(1970, 1, 1)
    end = int((now - epoch).total_seconds()) // period * period
    return [epoch + timedelta(seconds=end - period * (count - i)) for i in range(count)]


def _series(data: list[Any], starts: list[datetime], period: int, statistic: str) -> list[Datapoint]:
    by_period: dict[datetime, list[Any]] = {start: [] for start in starts}
    step = timedelta(seconds=period)
    first, last = starts[0], starts[-1] + step
    for datum in data:
        moment = _naive_utc(datum.timestamp)
        if first <= moment < last:
            index = int((moment - first).total_seconds()) // period
            by_period[starts[index]].append(datum)
    points = []
    for start in starts:
        value, low = aggregate(by_period[start], statistic)
        points.append(Datapoint(start, value, low))
    return points


def alarm_datapoints(backend: Any, alarm: Any, now: datetime) -> tuple[list[Datapoint], int, str]:
    """The alarm's evaluation range, oldest first; its period and a label of what it evaluates."""
    count = int(alarm.evaluation_periods) + EXTRA_PERIODS
    data = list(backend.metric_data)
    if alarm.metric_data_queries:
        return _math_datapoints(alarm, data, now, count)
    if getattr(alarm, "threshold_metric_id", None):
        raise Unsupported("the sandbox does not evaluate anomaly detection bands (ThresholdMetricId)")
    statistic = alarm.extended_statistic or alarm.statistic
    if statistic not in _STATISTICS and not alarm.extended_statistic:
        raise Unsupported(f"the alarm names no statistic the sandbox evaluates ({statistic!r})")
    period = int(alarm.period)
    starts = _periods(now, period, count)
    matching = _matching(data, alarm.namespace, alarm.metric_name, alarm.dimensions, alarm.unit)
    return _series(matching, starts, period, statistic), period, statistic


# ------------------------------------------------------------------------------------------ metric math


def _math_datapoints(alarm: Any, data: list[Any], now: datetime, count: int) -> tuple[list[Datapoint], int, str]:
    queries = alarm.metric_data_queries
    returned = [q for q in queries if str(q.return_data).lower() in ("true", "1", "none") and q.expression] or \
        [q for q in queries if q.expression]
    stats = [q for q in queries if q.metric_stat is not None]
    if not returned or not stats:
        raise Unsupported("the sandbox evaluates metric-math alarms whose Metrics hold metrics and one expression")
    periods = {int(q.metric_stat.period) for q in stats}
    if len(periods) != 1:
        raise Unsupported("the alarm's metrics use different periods")
    period = periods.pop()
    starts = _periods(now, period, count)
    series = {}
    for query in stats:
        metric = query.metric_stat.metric
        matching = _matching(data, metric.namespace, metric.metric_name, metric.dimensions, query.metric_stat.unit)
        series[query.id] = _series(matching, starts, period, query.metric_stat.stat)
    expression = returned[0].expression
    tree = _parse_expression(expression)
    points = []
    for index, start in enumerate(starts):
        values = {name: points_[index].value for name, points_ in series.items()}
        points.append(Datapoint(start, _evaluate(tree, values, expression)))
    return points, period, returned[0].label or expression


_BINARY = {ast.Add: lambda a, b: a + b, ast.Sub: lambda a, b: a - b, ast.Mult: lambda a, b: a * b,
           ast.Div: lambda a, b: a / b if b else None}
_COMPARE = {ast.Gt: lambda a, b: a > b, ast.Lt: lambda a, b: a < b, ast.GtE: lambda a, b: a >= b,
            ast.LtE: lambda a, b: a <= b, ast.Eq: lambda a, b: a == b, ast.NotEq: lambda a, b: a != b}


def _parse_expression(expression: str) -> ast.expr:
    try:
        tree = ast.parse(expression, mode="eval").body
    except SyntaxError:
        raise Unsupported(f"the sandbox does not evaluate the expression {expression!r}") from None
    for node in ast.walk(tree):
        allowed = (ast.BinOp, ast.UnaryOp, ast.USub, ast.Compare, ast.Call, ast.Name, ast.Constant, ast.Load,
                   *(_BINARY), *(_COMPARE))
        if not isinstance(node, allowed) or (isinstance(node, ast.Call) and (
                not isinstance(node.func, ast.Name) or node.func.id != "IF" or len(node.args) != 3)):
            raise Unsupported(f"the sandbox evaluates + - * /, comparisons and IF(); not {expression!r}")
    return tree


def _evaluate(node: ast.expr, values: dict[str, float | None], expression: str) -> float | None:
    """One period's value of the expression; None (missing) when a metric it reads has none."""
    if isinstance(node, ast.Constant):
        return float(node.value)
    if isinstance(node, ast.Name):
        if node.id not in values:
            raise Unsupported(f"{expression!r} names {node.id!r}, which is not one of the alarm's metrics")
        return values[node.id]
    if isinstance(node, ast.UnaryOp):
        operand = _evaluate(node.operand, values, expression)
        return None if operand is None else -operand
    if isinstance(node, ast.BinOp):
        left, right = _evaluate(node.left, values, expression), _evaluate(node.right, values, expression)
        return None if left is None or right is None else _BINARY[type(node.op)](left, right)
    if isinstance(node, ast.Compare):
        left, right = _evaluate(node.left, values, expression), _evaluate(node.comparators[0], values, expression)
        if left is None or right is None or len(node.ops) != 1:
            return None
        return 1.0 if _COMPARE[type(node.ops[0])](left, right) else 0.0
    assert isinstance(node, ast.Call)
    condition = _evaluate(node.args[0], values, expression)
    if condition is None:
        return None
    return _evaluate(node.args[1] if condition else node.args[2], values, expression)


# ------------------------------------------------------------------------------------------ the rules


def _when(moment: datetime) -> str:
    return f"{moment:%d/%m/%y %H:%M:%S}"


def _listing(points: list[Datapoint]) -> str:
    return ", ".join(f"{p.value} ({_when(p.start)})" for p in reversed(points))


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" + ("" if count == 1 else "s")


def classify(points: list[Datapoint], *, evaluation_periods: int, datapoints_to_alarm: int | None, threshold: float,
             comparison: str, treat_missing_data: str | None, current: str,
             evaluate_low_samples: bool = True) -> Verdict:
    """The state CloudWatch's rules give the evaluation range `points` (oldest first)."""
    if comparison not in _COMPARISONS:
        raise Unsupported(f"the sandbox does not evaluate {comparison} (anomaly detection bands)")
    breaches, words = _COMPARISONS[comparison]
    n = int(evaluation_periods)
    m = int(datapoints_to_alarm or n)
    treatment = treat_missing_data or "missing"
    real = [p for p in points if p.value is not None]
    data: dict[str, Any] = {"threshold": threshold, "recentDatapoints": [p.value for p in real[-n:]]}
    if not real:
        if treatment == "ignore":
            return Verdict(None, "", data)
        if treatment == "missing":
            return Verdict(INSUFFICIENT, f"Insufficient Data: {_plural(len(points), 'datapoint')} were unknown.", data)
        state = ALARM if treatment == "breaching" else OK
        label = "Breaching" if treatment == "breaching" else "NonBreaching"
        return Verdict(state, f"Threshold Crossed: no datapoints were received for {_plural(n, 'period')} and "
                              f"{_plural(n, 'missing datapoint')} {'was' if n == 1 else 'were'} treated as [{label}].", data)
    evaluated = real[-n:]
    if not evaluate_low_samples and any(p.low_sample for p in evaluated):
        return Verdict(None, "", data)
    breaching = sum(1 for p in evaluated if breaches(p.value, threshold))  # type: ignore[arg-type]
    filled = max(0, n - len(real))
    if filled and treatment == "breaching":
        breaching += filled
    data["evaluatedDatapoints"] = [{"timestamp": p.start.strftime("%Y-%m-%dT%H:%M:%S.000+0000"), "value": p.value}
                                   for p in reversed(evaluated)]
    fills = (f" and {_plural(filled, 'missing datapoint')} treated as [Breaching]"
             if filled and treatment == "breaching" else "")
    if breaching >= m:
        return Verdict(ALARM, f"Threshold Crossed: {breaching} out of the last {n} datapoints [{_listing(evaluated)}]{fills} "
                              f"were {words} the threshold ({threshold}) (minimum {_plural(m, 'datapoint')} for "
                              f"{current} -> ALARM transition).", data)
    if filled and treatment in ("missing", "ignore") and _premature(points, n, m, breaches, threshold):
        if treatment == "ignore":
            return Verdict(None, "", data)
        return Verdict(ALARM, f"Threshold Crossed: the oldest breaching datapoint of the last {n} [{_listing(evaluated)}] "
                              f"is {m} or more periods old and none since is within the threshold ({threshold}).", data)
    return Verdict(OK, f"Threshold Crossed: {breaching} out of the last {n} datapoints [{_listing(evaluated)}]{fills} "
                       f"{'was' if breaching == 1 else 'were'} {words} the threshold ({threshold}), fewer than the "
                       f"{_plural(m, 'datapoint')} needed for ALARM ({current} -> OK transition).", data)


def _premature(points: list[Datapoint], n: int, m: int, breaches: Callable[[float, float], bool], threshold: float) -> bool:
    """The guide's "premature alarm state": no non-breaching datapoint in the range, and the oldest
    breaching one among the last N periods at least M periods old (the newest period is 1 old)."""
    if any(p.value is not None and not breaches(p.value, threshold) for p in points):
        return False
    last = points[-n:]
    ages = [len(last) - i for i, p in enumerate(last) if p.value is not None]
    return bool(ages) and max(ages) >= m


# ------------------------------------------------------------------------------------- the alarms


def evaluate_alarm(backend: Any, alarm: Any, now: datetime) -> Verdict:
    """The verdict for one alarm now (naive UTC)."""
    points, period, label = alarm_datapoints(backend, alarm, now)
    verdict = classify(
        points, evaluation_periods=alarm.evaluation_periods, datapoints_to_alarm=alarm.datapoints_to_alarm,
        threshold=float(alarm.threshold), comparison=alarm.comparison_operator,
        treat_missing_data=alarm.treat_missing_data, current=alarm.state_value,
        evaluate_low_samples=alarm.evaluate_low_sample_count_percentile != "ignore",
    )
    verdict.reason_data.update({
        "version": "1.0", "queryDate": now.strftime("%Y-%m-%dT%H:%M:%S.000+0000"),
        "startDate": points[0].start.strftime("%Y-%m-%dT%H:%M:%S.000+0000"), "statistic": label, "period": period,
    })
    return verdict


def evaluate_all(now: datetime | None = None, accounts: Iterable[str] | None = None) -> list[tuple[str, str, str]]:
    """Evaluate every metric alarm of every account (or of `accounts`) and region; (alarm ARN, old, new)
    per transition."""
    from moto.cloudwatch.models import cloudwatch_backends

    moment = _naive_utc(now or datetime.now(timezone.utc))
    transitions = []
    for account_id, regions in list(cloudwatch_backends.items()):
        if accounts is not None and account_id not in accounts:
            continue
        for region, backend in list(regions.items()):
            for alarm in list(backend.alarms.values()):
                if getattr(alarm, "rule", None):
                    continue  # a composite alarm
                try:
                    verdict = evaluate_alarm(backend, alarm, moment)
                except Unsupported as exc:
                    verdict = Verdict(INSUFFICIENT, f"Unchecked: {exc}", {})
                if verdict.state is None or verdict.state == alarm.state_value:
                    continue
                old = alarm.state_value
                backend.set_alarm_state(alarm.name, verdict.reason, json.dumps(verdict.reason_data), verdict.state)
                transitions.append((alarm.alarm_arn, old, verdict.state))
                if alarm.actions_enabled:
                    _notify(account_id, region, alarm, old, moment)
    return transitions


def notification(account_id: str, region: str, alarm: Any, old: str, at: datetime) -> tuple[str, str]:
    """CloudWatch's SNS notification of a transition: (subject, JSON message)."""
    message = {
        "AlarmName": alarm.name, "AlarmDescription": alarm.description, "AWSAccountId": account_id,
        "AlarmConfigurationUpdatedTimestamp": _iso(alarm.configuration_updated_timestamp),
        "NewStateValue": alarm.state_value, "NewStateReason": alarm.state_reason,
        "StateChangeTime": _iso(at), "Region": region, "AlarmArn": alarm.alarm_arn, "OldStateValue": old,
        "OKActions": alarm.ok_actions, "AlarmActions": alarm.alarm_actions,
        "InsufficientDataActions": alarm.insufficient_data_actions,
        "Trigger": {
            "MetricName": alarm.metric_name, "Namespace": alarm.namespace, "StatisticType":
                "ExtendedStatistic" if alarm.extended_statistic else "Statistic",
            "Statistic": alarm.extended_statistic or alarm.statistic, "Unit": alarm.unit,
            "Dimensions": [{"name": d.name, "value": d.value} for d in alarm.dimensions],
            "Period": alarm.period, "EvaluationPeriods": alarm.evaluation_periods,
            "DatapointsToAlarm": alarm.datapoints_to_alarm, "ComparisonOperator": alarm.comparison_operator,
            "Threshold": alarm.threshold, "TreatMissingData": alarm.treat_missing_data or "missing",
        },
    }
    subject = f'{alarm.state_value}: "{alarm.name}" in {region}'
    return subject[:100], json.dumps(message)


def _iso(moment: datetime) -> str:
    return _naive_utc(moment).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "+0000"


def _notify(account_id: str, region: str, alarm: Any, old: str, at: datetime) -> None:
    from moto.sns.models import sns_backends

    actions = {OK: alarm.ok_actions, ALARM: alarm.alarm_actions, INSUFFICIENT: alarm.insufficient_data_actions}
    subject, message = notification(account_id, region, alarm, old, at)
    for arn in actions.get(alarm.state_value) or []:
        parts = arn.split(":")
        if len(parts) < 6 or parts[2] != "sns":
            continue  # EC2 and Auto Scaling actions are not run in the sandbox
        try:
            sns_backends[parts[4]][parts[3]].publish(message, arn=arn, subject=subject)
        except Exception as exc:  # noqa: BLE001 - a topic that is gone loses the notification, as on AWS
            log.warning("alarm %s: could not notify %s: %s", alarm.name, arn, exc)


# ----------------------------------------------------------------------------- the server process


def _initial_state(original: Callable[..., Any]) -> Callable[..., Any]:
    def put_metric_alarm(self: Any, *args: Any, **kwargs: Any) -> Any:
        name = kwargs.get("name", args[0] if args else None)
        before = self.alarms.get(name)
        alarm = original(self, *args, **kwargs)
        if before is None:
            alarm.state_value, alarm.state_reason = INSUFFICIENT, "Unchecked: Initial alarm creation"
        else:
            alarm.state_value, alarm.state_reason = before.state_value, before.state_reason
            alarm.state_reason_data, alarm.state_updated_timestamp = before.state_reason_data, before.state_updated_timestamp
            alarm.history = before.history
        return alarm

    put_metric_alarm._envctl_alarm_state = True  # type: ignore[attr-defined]
    return put_metric_alarm


class _Loop:
    stop = threading.Event()
    thread: threading.Thread | None = None


def _run(interval_s: float) -> None:
    while not _Loop.stop.wait(interval_s):
        try:
            evaluate_all()
        except Exception:  # noqa: BLE001 - one failed round must not end the evaluation
            log.exception("alarm evaluation failed")


def install(process: Any = None) -> None:
    """New alarms start INSUFFICIENT_DATA (idempotent); in the server process (a ServerProcess given),
    a daemon thread evaluates every alarm every EVALUATE_EVERY_S."""
    from moto.cloudwatch.models import CloudWatchBackend

    if not getattr(CloudWatchBackend.put_metric_alarm, "_envctl_alarm_state", False):
        CloudWatchBackend.put_metric_alarm = _initial_state(CloudWatchBackend.put_metric_alarm)  # type: ignore[method-assign]
    if process is not None and _Loop.thread is None:
        _Loop.stop.clear()
        _Loop.thread = threading.Thread(target=_run, args=(EVALUATE_EVERY_S,), name="alarm-evaluation", daemon=True)
        _Loop.thread.start()


def shutdown() -> None:
    _Loop.stop.set()
    _Loop.thread = None
