"""Where the Airflow host runs and on which AMI: decided from what exists, the same on every engine.

Both choices read the account through invokes (data sources), so the Pulumi engine (the AWS
provider answers) and the sandbox (moto answers, `sandbox/invokes.py`) run the same decision:

- The **zone**: the zone of the team's running host if there is one (moving would replace the
  subnets and the data volume, i.e. Postgres), else the first zone by name among the region's
  available zones that offers the host's instance type. AWS maps zone names to physical zones
  per account and does not offer every type in every zone ("Instance type offerings",
  https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/instance-discovery.html), so `<region>a`
  is not a safe guess (us-west-1 has two zones in most accounts, and which letters varies).
- The **AMI**: the running host's own AMI while its replacement triggers (userdata and
  instance type, fingerprinted in the `envctl:host-fingerprint` tag) are unchanged, else the
  latest AL2023 AMI. A newly published AMI therefore never replaces a running host by itself,
  and a host replaced for another reason boots the current AMI. (`ignore_changes=["ami"]` would
  not do that: Pulumi sends the old value of an ignored property, on a replacement too.)
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from provisioner.errors import EnvctlError

FINGERPRINT_TAG = "envctl:host-fingerprint"
# A host that may still be replaced or restarted; terminated ones are history.
LIVE_STATES = ["pending", "running", "stopping", "stopped"]


@dataclass(frozen=True)
class ExistingHost:
    """A team host found in the account: what the next host's placement keeps of it."""

    instance_id: str
    ami: str
    availability_zone: str
    fingerprint: str  # "" when the host has no fingerprint tag


def host_name(team: str) -> str:
    """The Name tag of the team's Airflow host (also how the next run finds it)."""
    return f"envctl-{team}-airflow"


def host_fingerprint(user_data_base64: str, instance_type: str) -> str:
    """What replaces the host (its userdata and its type), hashed: equal fingerprints, same host."""
    return hashlib.sha256(f"{instance_type}\n{user_data_base64}".encode()).hexdigest()[:32]


def choose_ami(latest: str, fingerprint: str, hosts: list[ExistingHost]) -> str:
    """The AMI of a running host that will not be replaced, else the latest one."""
    same = sorted(h.ami for h in hosts if h.fingerprint == fingerprint and h.ami)
    return same[0] if same else latest


def choose_zone(team: str, region: str, instance_type: str, available: list[str], offering: list[str],
                hosts: list[ExistingHost]) -> str:
    """The running host's zone, else the first available zone (by name) that offers the type."""
    offered = set(offering)
    kept = sorted({h.availability_zone for h in hosts if h.availability_zone})
    if kept:
        zone = kept[0]
        if zone not in offered:
            raise EnvctlError(
                f"{team}: instance type {instance_type} is not offered in {zone}, the zone {team}'s host and data "
                f"volume are in; moving zones would replace the data volume (Airflow's metadata)",
                hint=f"choose an airflow.instance_type offered in {zone} (aws ec2 describe-instance-type-offerings "
                     f"--location-type availability-zone --filters Name=location,Values={zone} --region {region})",
            )
        return zone
    for zone in sorted(available):
        if zone in offered:
            return zone
    raise EnvctlError(
        f"{team}: no available zone of {region} offers instance type {instance_type} "
        f"(zones: {', '.join(sorted(available)) or 'none'})",
        hint=f"choose another airflow.instance_type; `aws ec2 describe-instance-type-offerings --location-type "
             f"availability-zone --region {region}` lists what each zone offers",
    )


def existing_hosts(team: str, opts: pulumi.InvokeOutputOptions) -> pulumi.Output[list[ExistingHost]]:
    """The team's live hosts in the account (none on a first create)."""
    found = aws.ec2.get_instances_output(
        instance_tags={"Name": host_name(team), "envctl:team": team}, instance_state_names=LIVE_STATES, opts=opts,
    )

    def describe(ids: list[str] | None) -> pulumi.Output[list[ExistingHost]]:
        details = [aws.ec2.get_instance_output(instance_id=i, opts=opts) for i in sorted(ids or [])]
        return pulumi.Output.all(*details).apply(lambda found: [
            ExistingHost(instance_id=d.id, ami=d.ami or "", availability_zone=d.availability_zone or "",
                         fingerprint=(d.tags or {}).get(FINGERPRINT_TAG, "")) for d in found
        ])

    return found.ids.apply(describe)


def host_zone(team: str, region: str, instance_type: str, hosts: pulumi.Output[list[ExistingHost]],
              opts: pulumi.InvokeOutputOptions) -> pulumi.Output[str]:
    """The zone for the team's subnets, data volume and host (see choose_zone)."""
    zones = aws.get_availability_zones_output(state="available", opts=opts)
    offerings = aws.ec2.get_instance_type_offerings_output(
        location_type="availability-zone", filters=[{"name": "instance-type", "values": [instance_type]}], opts=opts,
    )
    return pulumi.Output.all(zones.names, offerings.locations, hosts).apply(
        lambda v: choose_zone(team, region, instance_type, list(v[0] or []), list(v[1] or []), v[2])
    )
