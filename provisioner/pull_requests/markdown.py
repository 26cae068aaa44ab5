"""The plan as a pull-request comment in Markdown."""

from __future__ import annotations

from provisioner.engines.base import ACTIONS
from provisioner.errors import InvalidInput
from provisioner.pull_requests.changes import CHANGE, NEW, PROGRAM_CHANGE, REMOVE
from provisioner.pull_requests.plan import FleetSummary, Plan, TeamPlan

MARKDOWN_MARKER = "<!-- envctl-plan -->"  # lets CI find and update its own PR comment
MAX_COMMENT_CHARS = 60_000  # GitHub refuses comments over 65,536 characters


STATUS_TEXT = {"ok": "ready", "invalid": "invalid request", "failed": "preview failed"}
ACTION_VERB = {"create": "create", "update": "update", "replace": "replace", "delete": "delete"}


def _escape(text: str) -> str:
    for char in "\\`*[]<|":
        text = text.replace(char, "\\" + char)
    return text


def _setting_item(line: str) -> str:
    label, _, value = line.partition(": ")
    return f"- `{label}`: {_escape(value)}" if value else f"- {_escape(line)}"


def _error_item(error: str) -> str:
    parts = error.split(": ", 2)
    if len(parts) == 3:
        where, what, message = parts
        return f"- `{where}` · `{what}`: {_escape(message)}"
    return f"- {_escape(error)}"


def _team_status(team: TeamPlan) -> str:
    if team.status == "ok" and team.action == REMOVE and team.summary.get("delete"):
        return "needs --allow-destroy"
    return STATUS_TEXT[team.status]


def _count(team: TeamPlan, action: str) -> str:
    return str(team.summary[action]) if team.summary else "-"


def _summary_table(teams: list[TeamPlan]) -> list[str]:
    lines = ["| team | action | request | create | update | replace | delete | USD/month | change | status |",
             "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |"]
    for team in teams:
        counts = " | ".join(_count(team, a) for a in ("create", "update", "replace", "delete"))
        cost = f"{_money(team.monthly_usd)} | {_money(team.monthly_usd_delta, signed=True)}"
        lines.append(f"| {team.team} | {team.action} | `{team.request}` | {counts} | {cost} | {_team_status(team)} |")
    return lines


def _money(amount: float | None, *, signed: bool = False) -> str:
    if amount is None:
        return "-"
    return f"{amount:+,.2f}" if signed and amount else f"{amount:,.2f}"


def _cost_line(team: TeamPlan) -> list[str]:
    if team.monthly_usd is None:
        return [f"**Cost**: {_escape(team.cost_note)}", ""] if team.cost_note else []
    text = f"**Cost**: ${_money(team.monthly_usd)}/month"
    if team.monthly_usd_delta is not None:
        delta = team.monthly_usd_delta
        text += f" ({'+' if delta > 0 else '-' if delta < 0 else ''}${_money(abs(delta))} against the base)"
    if team.budget_usd_month is not None:
        text += f" · budget ${team.budget_usd_month:,}/month"
    if team.cost_note:
        text += f" · **{_escape(team.cost_note)}**"
    return [text, ""]


def _counts_sentence(summary: dict[str, int]) -> str:
    parts = [f"{summary[a]} to {ACTION_VERB[a]}" for a in ("create", "update", "replace", "delete") if summary.get(a)]
    return ", ".join(parts) if parts else "no changes"


def _team_section(team: TeamPlan, *, resource_lists: bool) -> list[str]:
    lines = [f"### {team.team} · {team.action}", ""]
    where = f"`{team.request}`" + (f" (renamed from `{team.old_request}`)" if team.old_request else "")
    if team.region:
        where += f" · region `{team.region}` · network `{team.cidr}`"
    lines += [where, ""]
    if team.errors:
        lines += ["**Invalid request**: fix these and push again; nothing can be applied until then.", ""]
        lines += [_error_item(e) for e in team.errors] + [""]
    if team.notable:
        heading = "Requested" if team.action == NEW or team.note.startswith("the previous") else "Notable changes"
        lines += [f"**{heading}**", ""] + [_setting_item(item) for item in team.notable] + [""]
    elif team.action == CHANGE and not team.errors:
        lines += ["**Notable changes**: none", ""]
    if team.failure:
        lines += [f"**Preview failed**: {_escape(team.failure)}", ""]
    if team.summary:
        lines += [f"**Resources**: {_counts_sentence(team.summary)}", ""]
    lines += _cost_line(team)
    if team.note:
        lines += [f"> {_escape(team.note)}", ""]
    order = {action: index for index, action in enumerate(ACTIONS)}
    changed = sorted((c for c in team.changes if c.action != "same"), key=lambda c: (order[c.action], c.type, c.name))
    if changed and resource_lists:
        lines += [f"<details><summary>{len(changed)} resource change(s)</summary>", "",
                  "| action | type | name | detail |", "| --- | --- | --- | --- |"]
        lines += [f"| {c.action} | `{c.type}` | {_escape(c.name)} | {_escape(c.detail)} |" for c in changed]
        lines += ["", "</details>", ""]
    return lines


def _resources_changed(team: TeamPlan, *, compact: bool = False) -> str:
    changed = [c for c in team.changes if c.action != "same"]
    if team.failure:
        return _escape(team.failure)
    if not changed or compact:
        return _counts_sentence(team.summary) if team.summary else "-"
    return ", ".join(f"{c.action} {c.type.rsplit(':', 1)[-1]} {_escape(c.name)}" for c in changed[:8]) + (
        f", and {len(changed) - 8} more" if len(changed) > 8 else "")


def _grouped(items: list[dict[str, str]], verb: str) -> list[str]:
    """One line per resource type: which teams it happens in (a compact list for a large fleet)."""
    by_type: dict[str, list[str]] = {}
    for item in items:
        by_type.setdefault(f"{item.get('action', verb)} `{item['type']}`", []).append(item["team"])
    return [f"- {what} in {len(teams)} team(s): {', '.join(teams)}" for what, teams in by_type.items()]


def _fleet_summary(plan: Plan, fleet: FleetSummary, *, compact: bool) -> list[str]:
    paths = ", ".join(f"`{p}`" for p in fleet.program_paths[:10]) + (" …" if len(fleet.program_paths) > 10 else "")
    how = "compared offline with the merge base's code" if plan.offline else "affected teams previewed on the target"
    lines = [f"**Fleet change: {fleet.teams_affected} of {fleet.teams_total} teams affected** "
             f"(the program changed: {paths}; {how})", ""]
    if fleet.replacements:
        lines += [f"**Host and resource replacements ({len(fleet.replacements)})**", ""]
        lines += _grouped(fleet.replacements, "replace") if compact else [
            f"- {r['team']}: replace `{r['type']}` {_escape(r['name'])}" + (f" ({_escape(r['detail'])})" if r["detail"] else "")
            for r in fleet.replacements]
        lines += [""]
    if fleet.data_touching:
        lines += [f"**Touches data ({len(fleet.data_touching)})**: volumes, buckets, keys or databases", ""]
        lines += _grouped(fleet.data_touching, "change") if compact else [
            f"- {d['team']}: {d['action']} `{d['type']}` {_escape(d['name'])}" for d in fleet.data_touching]
        lines += [""]
    affected = [t for t in plan.teams if t.affected and t.action != REMOVE]
    if affected:
        lines += ["| team | environment | resources changed | USD/month | change |", "| --- | --- | --- | ---: | ---: |"]
        lines += [f"| {t.team} | {t.environment or '-'} | {_resources_changed(t, compact=compact)} | {_money(t.monthly_usd)} | "
                  f"{_money(t.monthly_usd_delta, signed=True)} |" for t in affected] + [""]
    unaffected = [t.team for t in plan.teams if not t.affected]
    if unaffected:
        lines += [f"Not affected ({len(unaffected)}): {', '.join(unaffected)}", ""]
    return lines


def render_markdown(plan: Plan) -> str:
    """The plan as a pull-request comment: stable (no times, no commit ids), one section per team.

    When the resource lists would make it longer than a GitHub comment allows, they are left out;
    when it is still too long (a large fleet), the teams a program change affects are summarised
    in the fleet summary only, and only the teams whose request changed get a section.
    """
    text = _markdown(plan, resource_lists=True)
    if len(text) <= MAX_COMMENT_CHARS:
        return text
    text = _markdown(plan, resource_lists=False, note=(
        "Resource lists are left out to fit a pull-request comment; `envctl plan` in the job log shows them."))
    if len(text) <= MAX_COMMENT_CHARS or plan.fleet is None:
        return text
    return _markdown(plan, resource_lists=False, compact=True, note=(
        "The teams only the program change affects are summarised above to fit a pull-request comment; "
        "`envctl plan` in the job log shows each one."))


def _markdown(plan: Plan, *, resource_lists: bool, note: str = "", compact: bool = False) -> str:
    lines = [MARKDOWN_MARKER, "## envctl plan", ""]
    if plan.fleet is not None:
        lines += _fleet_summary(plan, plan.fleet, compact=compact)
    scope = f"changes against `{plan.base}`" if plan.base else "the requests given"
    lines += [f"Target `{plan.target}` · {scope} · {len(plan.teams)} request(s)", ""]
    shown = [t for t in plan.teams if t.affected and not (compact and t.action == PROGRAM_CHANGE and t.status == "ok")]
    if not plan.teams:
        lines += ["No request file changed.", ""]
    elif note and not shown:
        lines += [f"> {note}", ""]
    elif shown:
        lines += _summary_table(shown) + [""]
        if note:
            lines += [f"> {note}", ""]
        for team in shown:
            lines += _team_section(team, resource_lists=resource_lists)
    if plan.other_errors:
        lines += ["### Other requests", "",
                  "These requests are not part of this change but are invalid; nothing can be applied until they are fixed.", ""]
        lines += [_error_item(e) for e in plan.other_errors] + [""]
    lines += [f"**{_verdict(plan)}**", ""]
    return "\n".join(lines)


def _verdict(plan: Plan) -> str:
    if plan.exit_code == InvalidInput.exit_code:
        return "Invalid requests: nothing will be applied until they are fixed."
    if plan.exit_code:
        return "A preview failed: fix it before merging (the apply would fail the same way)."
    guarded = [t.team for t in plan.teams if _team_status(t) == "needs --allow-destroy"]
    refusal = (f"the removal of {', '.join(guarded)} is refused until a platform engineer "
               "applies it with --allow-destroy.")
    if guarded and len(guarded) == len(plan.teams):
        return f"Merging applies nothing by itself: {refusal}"
    if guarded:
        return f"Merging applies the other changes; {refusal}"
    if plan.teams and not any(t.affected for t in plan.teams):
        return "Merging changes no team's resources."
    return "Merging applies these changes." if plan.teams else "Nothing to apply."
