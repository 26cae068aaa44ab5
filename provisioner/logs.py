"""A team's logs, read from its CloudWatch log group (`envctl logs`), through the engine's AWS clients.

The host writes one stream per component and instance, `<instance id>/<component>`: the containers
(postgres, init, scheduler, webserver or api-server, dag-processor) through Docker's awslogs driver,
the bootstrap (`bootstrap`) and the maintenance jobs (`job-daily`, `job-dag-sync`, `job-metrics`, `job-backup`)
through envctl-ship-log. A component's lines are those of every instance that has had it (a
replaced host leaves its streams until the group's retention removes their events).
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Iterator

from provisioner.errors import InvalidInput

DURATION = re.compile(r"^(\d+)([smhd])$")
DURATION_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}
# FilterLogEvents takes up to 100 stream names per call.
STREAMS_PER_CALL = 100
FOLLOW_POLL_SECONDS = 5.0
# --follow asks again for this much of the past each time: lines are ingested seconds (the awslogs
# driver batches every 5 s) to minutes (a job sends its output when it ends) after their time.
FOLLOW_LOOKBACK = timedelta(minutes=10)


@dataclass(frozen=True)
class LogLine:
    timestamp_ms: int
    component: str
    message: str
    event_id: str

    def render(self) -> str:
        """`<time> <component> <message>`, the time in UTC to the second."""
        moment = datetime.fromtimestamp(self.timestamp_ms / 1000, tz=timezone.utc)
        return f"{moment:%Y-%m-%dT%H:%M:%SZ} {self.component} {self.message.rstrip()}"


def parse_since(text: str) -> timedelta:
    """`30s`, `30m`, `2h`, `7d`: how far back to read."""
    match = DURATION.match(text.strip())
    if not match or int(match.group(1)) == 0:
        raise InvalidInput(f"--since {text!r} is not a duration; write a number and a unit: 45s, 30m, 2h or 7d")
    return timedelta(**{DURATION_UNITS[match.group(2)]: int(match.group(1))})


def component_of(stream: str) -> str:
    """`i-0abc/scheduler` -> `scheduler` (a stream not named by envctl is its own component)."""
    return stream.split("/", 1)[1] if "/" in stream else stream


def streams_by_component(logs: Any, group: str) -> dict[str, list[str]]:
    """The group's streams, by component."""
    found: dict[str, list[str]] = {}
    for page in logs.get_paginator("describe_log_streams").paginate(logGroupName=group):
        for stream in page["logStreams"]:
            found.setdefault(component_of(stream["logStreamName"]), []).append(stream["logStreamName"])
    return dict(sorted(found.items()))


def streams_for(components: dict[str, list[str]], component: str | None) -> list[str]:
    """Every stream, or the chosen component's; an unknown component is bad input naming the known ones."""
    if component is None:
        return [stream for streams in components.values() for stream in streams]
    if component not in components:
        known = ", ".join(components) or "none yet"
        raise InvalidInput(f"no component {component!r} in the team's logs; components: {known}")
    return components[component]


def read_lines(logs: Any, group: str, streams: list[str], start_ms: int) -> list[LogLine]:
    """The streams' events from start_ms on, oldest first."""
    lines: list[LogLine] = []
    for first in range(0, len(streams), STREAMS_PER_CALL):
        chunk = streams[first:first + STREAMS_PER_CALL]
        paginator = logs.get_paginator("filter_log_events")
        for page in paginator.paginate(logGroupName=group, logStreamNames=chunk, startTime=start_ms):
            lines.extend(
                LogLine(event["timestamp"], component_of(event["logStreamName"]), event["message"], event["eventId"])
                for event in page["events"]
            )
    return sorted(lines, key=lambda line: (line.timestamp_ms, line.component))


def follow(logs: Any, group: str, list_streams: Callable[[], list[str]], start_ms: int, *,
           poll_s: float = FOLLOW_POLL_SECONDS, sleep: Callable[[float], None] = time.sleep,
           now_ms: Callable[[], int] = lambda: int(time.time() * 1000)) -> Iterator[LogLine]:
    """New lines as they arrive, until the caller stops iterating (Ctrl-C in the CLI).

    The first poll reads from start_ms; each later one lists the streams again (a new host or job
    brings new ones) and reads from FOLLOW_LOOKBACK ago, skipping the events already given.
    """
    seen: dict[str, int] = {}
    window_start = start_ms
    while True:
        for line in read_lines(logs, group, list_streams(), window_start):
            if line.event_id not in seen:
                seen[line.event_id] = line.timestamp_ms
                yield line
        sleep(poll_s)
        window_start = max(start_ms, now_ms() - int(FOLLOW_LOOKBACK.total_seconds() * 1000))
        seen = {event_id: at for event_id, at in seen.items() if at >= window_start}
