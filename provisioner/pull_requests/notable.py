"""What a reviewer cares about in a request: the settings a new one asks for, and what a change
moves from old to new (plus the names of any other fields it changed)."""

from __future__ import annotations

from typing import Any, Callable

from pydantic import ValidationError

from provisioner.spec import TeamSpec, UnreadableRequest, load_request_text


def _inference(spec: TeamSpec) -> str:
    inference = spec.sagemaker.inference
    if not inference.enabled:
        return "off"
    if inference.serverless is not None:
        text = f"serverless {inference.serverless.memory_mb} MB, max concurrency {inference.serverless.max_concurrency}"
    else:
        instance = inference.instance
        text = f"{instance.type} x{instance.count}"
        if instance.autoscaling is not None:
            text += f", autoscaling {instance.autoscaling.min}-{instance.autoscaling.max}"
    if inference.image != "default":
        text += f", image {inference.image}"
    if inference.model_data:
        text += f", model {inference.model_data}"
    return text


# (label, the spec fields it covers, how it reads)
NOTABLE_SETTINGS: tuple[tuple[str, tuple[str, ...], Callable[[TeamSpec], str]], ...] = (
    ("region", ("region",), lambda s: s.region or "organisation default"),
    ("network.cidr", ("network.cidr",), lambda s: s.network.cidr or "allocated from the pool"),
    ("airflow.version", ("airflow.version",), lambda s: s.airflow.version),
    ("airflow.instance_type", ("airflow.instance_type",), lambda s: s.airflow.instance_type),
    ("airflow.volume_gb", ("airflow.volume_gb",), lambda s: f"{s.airflow.volume_gb} GiB"),
    ("sagemaker.notebook", ("sagemaker.notebook",),
     lambda s: s.sagemaker.notebook.instance_type if s.sagemaker.notebook.enabled else "off"),
    ("sagemaker.inference", ("sagemaker.inference",), _inference),
)
COVERED_FIELDS = tuple(covered for _, fields_, _ in NOTABLE_SETTINGS for covered in fields_) + ("secrets",)


def _leaves(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, inner in value.items():
            out.update(_leaves(inner, f"{prefix}.{key}" if prefix else str(key)))
        return out
    return {prefix: value}


def requested_settings(spec: TeamSpec) -> list[str]:
    """What a new request asks for, in reviewer terms."""
    lines = [f"{label}: {read(spec)}" for label, _, read in NOTABLE_SETTINGS]
    if spec.secrets:
        lines.append("secrets: " + ", ".join(spec.secrets))
    return lines


def notable_changes(old: TeamSpec, new: TeamSpec) -> list[str]:
    """The differences a reviewer cares about, old -> new, then the names of any other changed fields."""
    lines = [f"{label}: {read(old)} -> {read(new)}" for label, _, read in NOTABLE_SETTINGS if read(old) != read(new)]
    added = [name for name in new.secrets if name not in old.secrets]
    dropped = [name for name in old.secrets if name not in new.secrets]
    if added:
        lines.append("secrets added: " + ", ".join(added))
    if dropped:
        lines.append("secrets removed: " + ", ".join(dropped))
    before, after = _leaves(old.model_dump(by_alias=True)), _leaves(new.model_dump(by_alias=True))
    others = sorted(key for key in before.keys() | after.keys()
                    if before.get(key) != after.get(key)
                    and not any(key == c or key.startswith(c + ".") for c in COVERED_FIELDS))
    if others:
        lines.append("other fields changed: " + ", ".join(others))
    return lines


def parse_old_request(text: str | None) -> TeamSpec | None:
    """The request as it was at the base, or None when there was none or it was not valid."""
    if text is None:
        return None
    try:  # data only: the same bounded safe loader and model as spec.parse_file
        return TeamSpec.model_validate(load_request_text(text))
    except (UnreadableRequest, ValidationError):
        return None
