"""Sandbox alarm evaluation (engines/sandbox/alarm_evaluation.py) against moto's backend directly: no server, no Docker.

The classification tests replay the two tables of the CloudWatch User Guide's "How alarm state is
evaluated when data is missing" (0 not breaching, X breaching, - missing; the newest on the right).
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import pytest

from provisioner.engines.sandbox import alarm_evaluation as evaluation
from provisioner.engines.sandbox.alarm_evaluation import ALARM, INSUFFICIENT, OK, Datapoint, classify

ACCOUNT, REGION = "111122223333", "eu-west-1"  # an account of its own: other tests' alarms stay as they are
NOW = datetime(2026, 12, 2, 14, 0, 30)  # naive UTC, 30 s into a minute
NAMESPACE = "envctl/alarmtest"


def _points(pattern: str) -> list[Datapoint]:
    """'0 - X - X' -> datapoints (threshold 1, GreaterThanThreshold: X = 5, 0 = 0)."""
    start = datetime(2026, 12, 2, 13, 0)
    values = {"0": 0.0, "X": 5.0, "-": None}
    return [Datapoint(start + timedelta(minutes=i), values[c]) for i, c in enumerate(pattern.split())]


def _classify(pattern: str, m: int, treatment: str, current: str = "OK") -> str | None:
    return classify(_points(pattern), evaluation_periods=3, datapoints_to_alarm=m, threshold=1.0,
                    comparison="GreaterThanThreshold", treat_missing_data=treatment, current=current).state


RETAIN = None
# (data points, MISSING, IGNORE, BREACHING, NOT BREACHING) for Datapoints to Alarm 3 of Evaluation Periods 3 ...
THREE_OF_THREE = [
    ("0 - X - X", OK, OK, OK, OK),
    ("0 - - - -", OK, OK, OK, OK),
    ("- - - - -", INSUFFICIENT, RETAIN, ALARM, OK),
    ("0 X X - X", ALARM, ALARM, ALARM, ALARM),
    ("- - X - -", ALARM, RETAIN, ALARM, OK),
]
# ... and for 2 of 3 (an M out of N alarm).
TWO_OF_THREE = [
    ("0 - X - X", ALARM, ALARM, ALARM, ALARM),
    ("0 0 X 0 X", ALARM, ALARM, ALARM, ALARM),
    ("0 - X - -", OK, OK, ALARM, OK),
    ("- - - - 0", OK, OK, ALARM, OK),
    ("- - - X -", ALARM, RETAIN, ALARM, OK),
]


@pytest.mark.parametrize(("m", "row"), [(3, row) for row in THREE_OF_THREE] + [(2, row) for row in TWO_OF_THREE],
                         ids=[f"3of3 {r[0]}" for r in THREE_OF_THREE] + [f"2of3 {r[0]}" for r in TWO_OF_THREE])
def test_the_guides_missing_data_tables(m, row):
    pattern, *expected = row
    got = [_classify(pattern, m, treatment) for treatment in ("missing", "ignore", "breaching", "notBreaching")]
    assert got == expected


def test_ignore_keeps_whatever_state_the_alarm_has():
    assert _classify("- - - - -", 3, "ignore", current=ALARM) is None
    verdict = classify(_points("- - - - -"), evaluation_periods=3, datapoints_to_alarm=None, threshold=1.0,
                       comparison="GreaterThanThreshold", treat_missing_data="ignore", current=ALARM)
    assert verdict.state is None


@pytest.mark.parametrize(("comparison", "value", "breaching"), [
    ("GreaterThanOrEqualToThreshold", 1.0, True), ("GreaterThanThreshold", 1.0, False),
    ("LessThanThreshold", 0.5, True), ("LessThanOrEqualToThreshold", 1.0, True), ("LessThanThreshold", 1.0, False),
])
def test_comparison_operators(comparison, value, breaching):
    points = [Datapoint(datetime(2026, 12, 2, 13, 0), value)]
    verdict = classify(points, evaluation_periods=1, datapoints_to_alarm=1, threshold=1.0, comparison=comparison,
                       treat_missing_data="missing", current=OK)
    assert verdict.state == (ALARM if breaching else OK)


def test_anomaly_detection_bands_are_refused_as_unsupported():
    with pytest.raises(evaluation.Unsupported):
        classify(_points("X X X"), evaluation_periods=3, datapoints_to_alarm=3, threshold=1.0,
                 comparison="LessThanLowerOrGreaterThanUpperThreshold", treat_missing_data="missing", current=OK)


# ------------------------------------------------------------------------- against moto's backend


@pytest.fixture
def cloudwatch():
    """moto's CloudWatch and SNS backends of a fresh account, with the evaluator's PutMetricAlarm installed."""
    from moto.cloudwatch.models import cloudwatch_backends
    from moto.sns.models import sns_backends

    evaluation.install()
    backend = cloudwatch_backends[ACCOUNT][REGION]
    backend.alarms.clear()
    backend.metric_data.clear()
    sns = sns_backends[ACCOUNT][REGION]
    topic = sns.create_topic("alarmtest-alerts")
    yield backend, topic
    backend.alarms.clear()
    backend.metric_data.clear()
    sns.delete_topic(topic.arn)


def _alarm(backend, topic, name="heartbeat", **overrides):
    settings = dict(name=name, namespace=NAMESPACE, metric_name="SchedulerHeartbeat", comparison_operator="LessThanThreshold",
                    evaluation_periods=3, period=60, threshold=1.0, statistic="Sum", description="no heartbeat",
                    dimensions=[], alarm_actions=[topic.arn], ok_actions=[topic.arn], treat_missing_data="breaching")
    settings.update(overrides)
    return backend.put_metric_alarm(**settings)


def _put(backend, value, at, name="SchedulerHeartbeat", **extra):
    backend.put_metric_data(NAMESPACE, [{"MetricName": name, "Value": value, "Timestamp": at, **extra}])


def test_a_new_alarm_starts_insufficient_data_and_an_update_keeps_the_state(cloudwatch):
    backend, topic = cloudwatch
    alarm = _alarm(backend, topic)
    assert alarm.state_value == INSUFFICIENT
    backend.set_alarm_state("heartbeat", "test", "{}", ALARM)
    updated = _alarm(backend, topic, description="changed")
    assert (updated.state_value, updated.description) == (ALARM, "changed")


def test_the_heartbeat_alarm_follows_the_heartbeat_and_tells_the_topic(cloudwatch):
    backend, topic = cloudwatch
    _alarm(backend, topic)
    for minute in range(1, 6):
        _put(backend, 1.0, NOW - timedelta(minutes=minute))
    assert evaluation.evaluate_all(NOW, [ACCOUNT]) == [(backend.alarms["heartbeat"].alarm_arn, INSUFFICIENT, OK)]
    assert evaluation.evaluate_all(NOW, [ACCOUNT]) == []  # no transition, no second notification

    later = NOW + timedelta(minutes=3)  # the scheduler stopped: the publisher sends 0
    for minute in range(1, 4):
        _put(backend, 0.0, later - timedelta(minutes=minute))
    assert evaluation.evaluate_all(later, [ACCOUNT]) == [(backend.alarms["heartbeat"].alarm_arn, OK, ALARM)]
    alarm = backend.alarms["heartbeat"]
    assert alarm.state_reason.startswith("Threshold Crossed: 3 out of the last 3 datapoints"), alarm.state_reason
    assert json.loads(alarm.state_reason_data)["period"] == 60
    states = [json.loads(message)["NewStateValue"] for _, message, *_ in topic.sent_notifications]
    assert states == [OK, ALARM]
    subjects = [subject for _, _, subject, *_ in topic.sent_notifications]
    assert subjects[-1] == f'ALARM: "heartbeat" in {REGION}'


def test_no_heartbeat_at_all_is_breaching_for_the_heartbeat_alarm(cloudwatch):
    backend, topic = cloudwatch
    _alarm(backend, topic)
    evaluation.evaluate_all(NOW, [ACCOUNT])
    alarm = backend.alarms["heartbeat"]
    assert alarm.state_value == ALARM
    assert "no datapoints were received for 3 periods" in alarm.state_reason


def test_only_the_metrics_full_dimension_set_and_namespace_count(cloudwatch):
    backend, topic = cloudwatch
    _alarm(backend, topic, treat_missing_data="missing")
    for minute in range(1, 4):  # the same name with a dimension, and another namespace: other metrics
        backend.put_metric_data(NAMESPACE, [{"MetricName": "SchedulerHeartbeat", "Value": 0.0,
                                             "Timestamp": NOW - timedelta(minutes=minute),
                                             "Dimensions": [{"Name": "Host", "Value": "a"}]}])
        backend.put_metric_data("envctl/other", [{"MetricName": "SchedulerHeartbeat", "Value": 0.0,
                                                  "Timestamp": NOW - timedelta(minutes=minute)}])
    evaluation.evaluate_all(NOW, [ACCOUNT])
    assert backend.alarms["heartbeat"].state_value == INSUFFICIENT


def test_data_of_the_current_unfinished_period_waits_for_the_period_to_end(cloudwatch):
    backend, topic = cloudwatch
    _alarm(backend, topic, name="volume", metric_name="DataVolumeUsedPercent", comparison_operator="GreaterThanThreshold",
           threshold=80.0, statistic="Maximum", evaluation_periods=1, treat_missing_data="notBreaching")
    _put(backend, 95.0, NOW, name="DataVolumeUsedPercent")
    evaluation.evaluate_all(NOW, [ACCOUNT])
    assert backend.alarms["volume"].state_value == OK
    evaluation.evaluate_all(NOW + timedelta(seconds=40), [ACCOUNT])
    assert backend.alarms["volume"].state_value == ALARM


@pytest.mark.parametrize(("statistic", "values", "expected"), [
    ("Sum", [1, 2, 3], 6.0), ("Average", [1, 2, 3], 2.0), ("Minimum", [4, 2, 3], 2.0), ("Maximum", [1, 7, 3], 7.0),
    ("SampleCount", [5, 5], 2.0), ("p50", [1, 2, 3, 4], 2.0), ("p99", list(range(1, 101)), 99.0),
])
def test_statistics_of_a_period(statistic, values, expected):
    from moto.cloudwatch.models import MetricDatum

    datums = [MetricDatum(NAMESPACE, "M", float(v), [], NOW) for v in values]
    assert evaluation.aggregate(datums, statistic)[0] == expected


def test_statistic_sets_count_in_sums_and_in_percentiles_only_when_single_valued():
    from moto.cloudwatch.models import MetricAggregatedDatum

    uniform = MetricAggregatedDatum(NAMESPACE, "M", 3.0, 3.0, 2, 6.0, [], NOW)
    spread = MetricAggregatedDatum(NAMESPACE, "M", 1.0, 9.0, 3, 12.0, [], NOW)
    assert evaluation.aggregate([uniform, spread], "Sum")[0] == 18.0
    assert evaluation.aggregate([uniform, spread], "SampleCount")[0] == 5.0
    assert evaluation.aggregate([uniform, spread], "p100")[0] == 3.0  # the spread set has no raw values


def test_a_percentile_alarm_that_ignores_low_sample_counts_keeps_its_state(cloudwatch):
    backend, topic = cloudwatch
    _alarm(backend, topic, name="latency", metric_name="ModelLatency", comparison_operator="GreaterThanThreshold",
           threshold=100.0, statistic=None, extended_statistic="p99", evaluation_periods=1,
           treat_missing_data="notBreaching", evaluate_low_sample_count_percentile="ignore")
    _put(backend, 500.0, NOW - timedelta(minutes=1), name="ModelLatency")  # 1 sample, p99 needs 1000
    evaluation.evaluate_all(NOW, [ACCOUNT])
    assert backend.alarms["latency"].state_value == INSUFFICIENT
    backend.alarms["latency"].evaluate_low_sample_count_percentile = "evaluate"
    evaluation.evaluate_all(NOW, [ACCOUNT])
    assert backend.alarms["latency"].state_value == ALARM


def _rate_alarm(backend, topic):
    from moto.cloudwatch.models import Metric, MetricDataQuery, MetricStat

    def stat(metric: str) -> MetricStat:
        return MetricStat(Metric(metric, "AWS/SageMaker", []), 300, "Sum", None)

    queries = [
        MetricDataQuery("errors", None, None, False, metric_stat=stat("Invocation5XXErrors")),
        MetricDataQuery("invocations", None, None, False, metric_stat=stat("Invocations")),
        MetricDataQuery("rate", "5XX errors (% of invocations)", None, True,
                        expression="IF(invocations > 0, 100 * errors / invocations, 0)"),
    ]
    return _alarm(backend, topic, name="rate", namespace=None, metric_name=None, metric_data_queries=queries,
                  comparison_operator="GreaterThanThreshold", evaluation_periods=2, period=None, threshold=5.0,
                  statistic=None, treat_missing_data="notBreaching")


def test_the_endpoint_5xx_rate_expression_is_evaluated(cloudwatch):
    backend, topic = cloudwatch
    _rate_alarm(backend, topic)
    now = datetime(2026, 12, 2, 14, 0, 10)
    for minutes in (1, 6):  # one datapoint in each of the last two 5-minute periods
        at = now - timedelta(minutes=minutes)
        backend.put_metric_data("AWS/SageMaker", [{"MetricName": "Invocations", "Value": 100.0, "Timestamp": at},
                                                  {"MetricName": "Invocation5XXErrors", "Value": 2.0, "Timestamp": at}])
    evaluation.evaluate_all(now, [ACCOUNT])
    assert backend.alarms["rate"].state_value == OK  # 2 %
    for minutes in (2, 7):
        backend.put_metric_data("AWS/SageMaker", [{"MetricName": "Invocation5XXErrors", "Value": 8.0,
                                                   "Timestamp": now - timedelta(minutes=minutes)}])
    evaluation.evaluate_all(now, [ACCOUNT])
    assert backend.alarms["rate"].state_value == ALARM  # 10 % in both periods
    assert "5XX errors (% of invocations)" in backend.alarms["rate"].state_reason_data


def test_an_expression_the_sandbox_does_not_evaluate_leaves_the_alarm_insufficient_data_saying_so(cloudwatch):
    backend, topic = cloudwatch
    alarm = _rate_alarm(backend, topic)
    alarm.metric_data_queries[2].expression = "ANOMALY_DETECTION_BAND(errors, 2)"
    backend.set_alarm_state("rate", "test", "{}", OK)
    evaluation.evaluate_all(NOW, [ACCOUNT])
    assert backend.alarms["rate"].state_value == INSUFFICIENT
    assert "the sandbox evaluates" in backend.alarms["rate"].state_reason


def test_disabled_actions_change_the_state_but_tell_nobody(cloudwatch):
    backend, topic = cloudwatch
    _alarm(backend, topic, actions_enabled=False)
    evaluation.evaluate_all(NOW, [ACCOUNT])
    assert backend.alarms["heartbeat"].state_value == ALARM
    assert topic.sent_notifications == []


@pytest.mark.parametrize(("pattern", "state"), [("1 1 1 - -", OK), ("1 1 - - -", OK), ("1 - - - -", OK),
                                                ("- - - - -", ALARM), ("1 1 0 0 0", ALARM)])
def test_a_heartbeat_that_stops_arriving_alarms_once_the_range_is_empty_and_zeros_alarm_after_three(pattern, state):
    """The scheduler-heartbeat alarm (Sum < 1 for 3 of 3, missing data breaching): the newest real datapoints are
    evaluated while there are 3, then only the shortfall is filled as breaching (docs/operations.md, Health)."""
    start = datetime(2026, 12, 2, 13, 0)
    values = {"1": 1.0, "0": 0.0, "-": None}
    points = [Datapoint(start + timedelta(minutes=i), values[c]) for i, c in enumerate(pattern.split())]
    verdict = classify(points, evaluation_periods=3, datapoints_to_alarm=None, threshold=1.0, comparison="LessThanThreshold",
                       treat_missing_data="breaching", current=OK)
    assert verdict.state == state
