"""How results look: resource trees, change tables, outputs. No logic beyond presentation."""

from __future__ import annotations

import base64
import gzip
import json
from typing import TYPE_CHECKING, Any

from rich.markup import escape
from rich.table import Table
from rich.tree import Tree

from provisioner.engines.base import OperationResult

if TYPE_CHECKING:  # pulumi is heavy; rendering a result must not import it
    from provisioner.engines.mocked import Registration

# The properties worth seeing in a tree, per resource type (camelCase, as the engine sees them).
KEY_PROPERTIES: dict[str, tuple[str, ...]] = {
    "aws:ec2/vpc:Vpc": ("cidrBlock",),
    "aws:ec2/subnet:Subnet": ("cidrBlock", "availabilityZone", "mapPublicIpOnLaunch"),
    "aws:ec2/securityGroup:SecurityGroup": ("ingress", "egress"),
    "aws:ec2/defaultSecurityGroup:DefaultSecurityGroup": ("ingress", "egress"),
    "aws:ec2/vpcEndpoint:VpcEndpoint": ("serviceName", "vpcEndpointType"),
    "aws:ec2/instance:Instance": ("instanceType", "ami", "associatePublicIpAddress", "metadataOptions", "rootBlockDevice"),
    "aws:ebs/volume:Volume": ("size", "type", "encrypted"),
    "aws:ec2/volumeAttachment:VolumeAttachment": ("deviceName",),
    "aws:kms/key:Key": ("enableKeyRotation", "deletionWindowInDays"),
    "aws:kms/alias:Alias": ("name",),
    "aws:s3/bucket:Bucket": ("bucket",),
    "aws:s3/bucketVersioning:BucketVersioning": ("versioningConfiguration",),
    "aws:ecr/repository:Repository": ("name", "imageTagMutability"),
    "aws:cloudwatch/logGroup:LogGroup": ("name", "retentionInDays"),
    "aws:cloudwatch/metricAlarm:MetricAlarm": ("metricName", "alarmActions"),
    "aws:iam/role:Role": ("name",),
    "aws:iam/policy:Policy": ("name",),
    "aws:iam/instanceProfile:InstanceProfile": ("name",),
    "aws:secretsmanager/secret:Secret": ("name",),
    "aws:ssm/parameter:Parameter": ("name",),
    "aws:sagemaker/model:Model": ("primaryContainer",),
    "aws:sagemaker/endpointConfiguration:EndpointConfiguration": ("productionVariants",),
    "aws:sagemaker/endpoint:Endpoint": ("name",),
    "aws:sagemaker/notebookInstance:NotebookInstance": ("name", "instanceType", "directInternetAccess"),
    "aws:appautoscaling/target:Target": ("minCapacity", "maxCapacity"),
    "aws:budgets/budget:Budget": ("limitAmount", "limitUnit"),
}

ACTION_STYLE = {"create": "green", "update": "yellow", "replace": "magenta", "delete": "red", "same": "dim"}
ACTION_SIGN = {"create": "+", "update": "~", "replace": "+-", "delete": "-", "same": " "}


def decode_user_data(inputs: dict[str, Any]) -> str | None:
    encoded = inputs.get("userDataBase64")
    if not encoded:
        return inputs.get("userData")
    raw = base64.b64decode(encoded)
    return (gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw).decode()


def _short(value: Any) -> str:
    text = json.dumps(value, separators=(",", ":"), default=str) if isinstance(value, (dict, list)) else str(value)
    return text if len(text) <= 90 else text[:87] + "..."


def resource_options(reg: Registration) -> dict[str, Any]:
    """A resource's options as Pulumi names them. `dependencies` is every resource it waits for (as
    Pulumi records them in state), `propertyDependencies` which input brought which, `dependsOn`
    the rest: its explicit depends_on."""
    return {
        "dependsOn": reg.depends_on,
        "dependencies": reg.dependencies,
        "propertyDependencies": reg.property_dependencies,
        "ignoreChanges": reg.ignore_changes,
        "replaceOnChanges": reg.replace_on_changes,
        "protect": reg.protect,
        "retainOnDelete": reg.retain_on_delete,
        "deleteBeforeReplace": reg.delete_before_replace,
    }


def _urn_name(urn: str) -> str:
    return urn.rsplit("::", 1)[-1]


def _options_label(reg: Registration) -> str:
    """The options that are set, compactly: `[retainOnDelete ignoreChanges=ami dependsOn=<name>]`."""
    flags = [name for name, on in (("protect", reg.protect), ("retainOnDelete", reg.retain_on_delete),
                                   ("deleteBeforeReplace", reg.delete_before_replace)) if on]
    lists = [f"{name}={','.join(values)}" for name, values in (
        ("ignoreChanges", reg.ignore_changes), ("replaceOnChanges", reg.replace_on_changes),
        ("dependsOn", _first_and_count([_urn_name(urn) for urn in reg.depends_on]))) if values]
    return escape("[" + " ".join(flags + lists) + "]") if flags or lists else ""


def _first_and_count(names: list[str]) -> list[str]:
    """Two names at most (`a,b+3`): a tree line has one screen line; --json lists them all."""
    return names if len(names) <= 2 else [names[0], f"{names[1]}+{len(names) - 2}"]


def _label(reg: Registration) -> str:
    props = [f"{key}={_short(reg.inputs[key])}" for key in KEY_PROPERTIES.get(reg.type, ()) if key in reg.inputs]
    if reg.type == "aws:ec2/instance:Instance":
        script = decode_user_data(reg.inputs) or ""
        props.append(f"userData={len(script.encode())} bytes")
    options = _options_label(reg)  # before the properties: a long property must not hide it
    details = (f" [yellow]{options}[/]" if options else "") + (f" [dim]{' '.join(props)}[/]" if props else "")
    return f"[bold]{reg.name}[/] [cyan]{reg.type}[/]{details}"


def resource_tree(team: str, registrations: list[Registration]) -> Tree:
    children: dict[str, list[Registration]] = {}
    for reg in registrations:
        children.setdefault(reg.parent, []).append(reg)
    roots = [r for r in registrations if r.type.startswith("envctl:") and not any(p.urn == r.parent for p in registrations)]
    tree = Tree(f"[bold]{team}[/] · {sum(1 for r in registrations if r.custom and not r.is_provider)} resources")

    def add(node: Tree, reg: Registration) -> None:
        branch = node.add(_label(reg))
        for kid in sorted(children.get(reg.urn, []), key=lambda r: (not r.type.startswith("envctl:"), r.type, r.name)):
            add(branch, kid)

    for root in roots:
        add(tree, root)
    return tree


def registrations_json(team: str, registrations: list[Registration]) -> dict[str, Any]:
    resources = []
    for reg in registrations:
        if reg.is_provider:
            continue
        entry: dict[str, Any] = {"urn": reg.urn, "type": reg.type, "name": reg.name, "parent": reg.parent,
                                 "custom": reg.custom, "inputs": reg.inputs, "options": resource_options(reg)}
        if reg.type == "aws:ec2/instance:Instance":
            entry["userData"] = decode_user_data(reg.inputs)
        resources.append(entry)
    providers = [{"urn": r.urn, "type": r.type, "inputs": r.inputs} for r in registrations if r.is_provider]
    return {"team": team, "target": "offline", "providers": providers, "resources": resources}


def changes_table(result: OperationResult, *, show_same: bool = False) -> Table:
    table = Table(show_header=True, header_style="bold", box=None, pad_edge=False)
    for column in ("", "type", "name", "detail"):
        table.add_column(column)
    for change in result.changes:
        if change.action == "same" and not show_same:
            continue
        style = ACTION_STYLE.get(change.action, "")
        detail = change.detail + ("" if change.materialised else " (not materialised: no sandbox handler)")
        table.add_row(f"[{style}]{ACTION_SIGN.get(change.action, '?')}[/]", change.type, change.name, detail.strip())
    return table


def summary_line(result: OperationResult) -> str:
    counts = result.summary
    parts = [f"[{ACTION_STYLE[a]}]{counts[a]} to {a}[/]" if result.operation == "preview"
             else f"[{ACTION_STYLE[a]}]{counts[a]} {a}d[/]"
             for a in ("create", "update", "replace", "delete") if counts[a]]
    if not parts:
        return f"{result.team}: no changes ({counts['same']} unchanged) in {result.duration_s:.1f}s"
    return f"{result.team}: " + ", ".join(parts) + f", {counts['same']} unchanged in {result.duration_s:.1f}s"


def outputs_table(outputs: dict[str, Any]) -> Table:
    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_column(style="bold")
    table.add_column()
    for key, value in outputs.items():
        table.add_row(key, _short(value))
    return table
