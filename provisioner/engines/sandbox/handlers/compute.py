"""Sandbox handlers for the Airflow host: the EC2 instance, its data volume and the attachment."""

from __future__ import annotations

import base64
import hashlib
from typing import Any

from botocore.exceptions import ClientError

from provisioner.engines.sandbox.handlers.common import as_int, compact, ignore_missing, is_error
from provisioner.engines.sandbox.handlers.network import by_urn_filter, sync_tags, tag_spec
from provisioner.engines.sandbox.handlers.registry import Handler, register

LIVE_STATES = ["pending", "running", "stopping", "stopped"]


def user_data_bytes(inputs: dict[str, Any]) -> bytes | None:
    if inputs.get("userDataBase64"):
        return base64.b64decode(inputs["userDataBase64"])
    if inputs.get("userData"):
        return inputs["userData"].encode()
    return None


@register("aws:ec2/instance:Instance")
class InstanceHandler(Handler):
    """The Airflow host: private subnet, no public IP, IMDSv2 required, encrypted root, userdata.

    Sandbox: moto records the instance and its userdata byte for byte but boots nothing and runs
    no userdata; with sandbox hosts on (`--hosts`), the instance also boots as a local container
    that runs the userdata (hosts.py), and terminating it removes that container. moto accepts any
    AMI and instance type. Metadata options and the instance profile are passed to the instance
    itself (moto ignores them in launch templates). The program replaces the instance when its type
    changes (replace_on_changes), so no type change reaches update().
    """

    replace_on = ("ami", "subnetId", "userData", "userDataBase64", "availabilityZone", "rootBlockDevice",
                  "associatePublicIpAddress", "iamInstanceProfile", "keyName", "privateIp")

    def create(self, ctx, reg, region):
        ec2 = ctx.client("ec2", region)
        inputs = reg.inputs
        root_device = self._root_device_name(ec2, inputs["ami"])
        root = inputs.get("rootBlockDevice") or {}
        request = compact(
            ImageId=inputs["ami"], InstanceType=inputs["instanceType"], MinCount=1, MaxCount=1,
            UserData=user_data_bytes(inputs),
            IamInstanceProfile={"Name": inputs["iamInstanceProfile"]} if inputs.get("iamInstanceProfile") else None,
            MetadataOptions=self._metadata_options(inputs.get("metadataOptions")),
            Monitoring={"Enabled": bool(inputs.get("monitoring", False))},
            NetworkInterfaces=[{
                "DeviceIndex": 0, "SubnetId": inputs["subnetId"], "Groups": inputs.get("vpcSecurityGroupIds") or [],
                "AssociatePublicIpAddress": bool(inputs.get("associatePublicIpAddress", False)),
            }],
            BlockDeviceMappings=[{"DeviceName": root_device, "Ebs": compact(
                VolumeSize=as_int(root.get("volumeSize")), VolumeType=root.get("volumeType"),
                Encrypted=root.get("encrypted"), KmsKeyId=root.get("kmsKeyId"), DeleteOnTermination=True,
            )}] if root else None,
            TagSpecifications=tag_spec(ctx, reg, "instance") + tag_spec(ctx, reg, "volume"),
        )
        instance = ec2.run_instances(**request)["Instances"][0]
        outputs = self._outputs(ctx, reg, region, instance)
        if ctx.hosts is not None:
            self._start_host(ctx, reg, region, outputs)
        return instance["InstanceId"], outputs

    @staticmethod
    def _start_host(ctx, reg, region: str, outputs: dict[str, Any]) -> None:
        from provisioner.engines.sandbox.hosts import HostLaunch

        inputs = reg.inputs
        ctx.hosts.start(HostLaunch(
            instance_id=outputs["id"], team=ctx.tags(reg).get("envctl:team", ""), region=region,
            user_data=user_data_bytes(inputs) or b"", instance_profile=inputs.get("iamInstanceProfile") or "",
            availability_zone=outputs["availabilityZone"], private_ip=outputs["privateIp"],
            instance_type=inputs.get("instanceType", ""), ami=inputs.get("ami", ""),
        ))

    def update(self, ctx, reg, old, region):
        ec2 = ctx.client("ec2", region)
        inputs = reg.inputs
        if inputs.get("metadataOptions") != old.inputs.get("metadataOptions"):
            ec2.modify_instance_metadata_options(InstanceId=old.id, **self._metadata_options(inputs.get("metadataOptions")))
        if (inputs.get("vpcSecurityGroupIds") or []) != (old.inputs.get("vpcSecurityGroupIds") or []):
            ec2.modify_instance_attribute(InstanceId=old.id, Groups=inputs.get("vpcSecurityGroupIds") or [])
        if bool(inputs.get("monitoring")) != bool(old.inputs.get("monitoring")):
            (ec2.monitor_instances if inputs.get("monitoring") else ec2.unmonitor_instances)(InstanceIds=[old.id])
        sync_tags(ctx, reg, old, region, old.id)
        instance = ec2.describe_instances(InstanceIds=[old.id])["Reservations"][0]["Instances"][0]
        return self._outputs(ctx, reg, region, instance)

    def delete(self, ctx, old, region):
        if ctx.hosts is not None:
            ctx.hosts.remove(old.id)
        ignore_missing(lambda: ctx.client("ec2", region).terminate_instances(InstanceIds=[old.id]), "InvalidInstanceID.NotFound")

    def exists(self, ctx, old, region):
        try:
            reservations = ctx.client("ec2", region).describe_instances(
                InstanceIds=[old.id], Filters=[{"Name": "instance-state-name", "Values": LIVE_STATES}])["Reservations"]
        except ClientError as exc:
            if is_error(exc, "InvalidInstanceID.NotFound"):
                return False
            raise
        return bool(reservations)

    def find(self, ctx, reg, region):
        reservations = ctx.client("ec2", region).describe_instances(
            Filters=by_urn_filter(reg) + [{"Name": "instance-state-name", "Values": LIVE_STATES}])["Reservations"]
        if not reservations:
            return None
        instance = reservations[0]["Instances"][0]
        return instance["InstanceId"], self._outputs(ctx, reg, region, instance)

    @staticmethod
    def _metadata_options(options: dict[str, Any] | None) -> dict[str, Any] | None:
        if not options:
            return None
        return compact(HttpTokens=options.get("httpTokens"), HttpEndpoint=options.get("httpEndpoint"),
                       HttpPutResponseHopLimit=as_int(options.get("httpPutResponseHopLimit")))

    @staticmethod
    def _root_device_name(ec2, ami: str) -> str:
        try:
            images = ec2.describe_images(ImageIds=[ami])["Images"]
        except ClientError:
            images = []
        return images[0].get("RootDeviceName", "/dev/xvda") if images else "/dev/xvda"

    @staticmethod
    def _outputs(ctx, reg, region, instance: dict[str, Any]) -> dict[str, Any]:
        return {
            **reg.inputs, "id": instance["InstanceId"],
            "arn": f"arn:aws:ec2:{region}:{ctx.account_id}:instance/{instance['InstanceId']}",
            "privateIp": instance.get("PrivateIpAddress", ""), "publicIp": instance.get("PublicIpAddress", ""),
            "availabilityZone": instance.get("Placement", {}).get("AvailabilityZone", ""),
            "primaryNetworkInterfaceId": (instance.get("NetworkInterfaces") or [{}])[0].get("NetworkInterfaceId", ""),
        }


@register("aws:ebs/volume:Volume")
class VolumeHandler(Handler):
    """The encrypted data volume that holds Postgres and outlives host replacements.

    Sandbox: moto stores size, type and encryption; no data is written to it. With sandbox hosts
    on, a sparse file stands for its blocks (deleted with the volume).
    """

    replace_on = ("availabilityZone", "encrypted", "kmsKeyId", "snapshotId")

    def create(self, ctx, reg, region):
        inputs = reg.inputs
        volume = ctx.client("ec2", region).create_volume(**compact(
            AvailabilityZone=inputs["availabilityZone"], Size=as_int(inputs.get("size")), VolumeType=inputs.get("type"),
            Encrypted=inputs.get("encrypted"), KmsKeyId=inputs.get("kmsKeyId"), Iops=as_int(inputs.get("iops")),
            TagSpecifications=tag_spec(ctx, reg, "volume"),
        ))
        return volume["VolumeId"], self._outputs(ctx, reg, region, volume["VolumeId"])

    def update(self, ctx, reg, old, region):
        inputs = reg.inputs
        if (inputs.get("size"), inputs.get("type")) != (old.inputs.get("size"), old.inputs.get("type")):
            ctx.client("ec2", region).modify_volume(**compact(VolumeId=old.id, Size=as_int(inputs.get("size")),
                                                              VolumeType=inputs.get("type")))
        sync_tags(ctx, reg, old, region, old.id)
        return self._outputs(ctx, reg, region, old.id)

    def delete(self, ctx, old, region):
        ignore_missing(lambda: ctx.client("ec2", region).delete_volume(VolumeId=old.id), "InvalidVolume.NotFound")
        if ctx.hosts is not None:
            ctx.hosts.delete_volume(old.id)

    def exists(self, ctx, old, region):
        return bool(ctx.client("ec2", region).describe_volumes(Filters=[{"Name": "volume-id", "Values": [old.id]}])["Volumes"])

    def find(self, ctx, reg, region):
        found = ctx.client("ec2", region).describe_volumes(Filters=by_urn_filter(reg))["Volumes"]
        return (found[0]["VolumeId"], self._outputs(ctx, reg, region, found[0]["VolumeId"])) if found else None

    @staticmethod
    def _outputs(ctx, reg, region, volume_id):
        return {**reg.inputs, "id": volume_id, "arn": f"arn:aws:ec2:{region}:{ctx.account_id}:volume/{volume_id}"}


def attachment_id(device: str, instance_id: str, volume_id: str) -> str:
    """The id the AWS provider gives an attachment: vai- and a hash of its three parts."""
    return "vai-" + str(int(hashlib.sha256(f"{device}-{instance_id}-{volume_id}-".encode()).hexdigest()[:8], 16))


@register("aws:ec2/volumeAttachment:VolumeAttachment")
class VolumeAttachmentHandler(Handler):
    """Attaches the data volume to the host.

    Sandbox: moto attaches at once; `stopInstanceBeforeDetaching` has nothing to stop. With sandbox
    hosts on, the volume's file appears in the host container as the device (a loop device).
    """

    replace_on = ("deviceName", "instanceId", "volumeId")
    delete_before_replace = True

    def create(self, ctx, reg, region):
        inputs = reg.inputs
        ec2 = ctx.client("ec2", region)
        ec2.attach_volume(Device=inputs["deviceName"], InstanceId=inputs["instanceId"], VolumeId=inputs["volumeId"])
        if ctx.hosts is not None:
            size = ec2.describe_volumes(VolumeIds=[inputs["volumeId"]])["Volumes"][0]["Size"]
            ctx.hosts.attach_volume(inputs["instanceId"], inputs["volumeId"], inputs["deviceName"], size)
        return attachment_id(inputs["deviceName"], inputs["instanceId"], inputs["volumeId"]), dict(inputs)

    def delete(self, ctx, old, region):
        inputs = old.inputs
        if ctx.hosts is not None:
            ctx.hosts.detach_volume(inputs["instanceId"], inputs["volumeId"])
        ignore_missing(lambda: ctx.client("ec2", region).detach_volume(
            VolumeId=inputs["volumeId"], InstanceId=inputs["instanceId"], Device=inputs["deviceName"]),
            "InvalidVolume.NotFound", "IncorrectState", "InvalidAttachment.NotFound", "InvalidInstanceID.NotFound")

    def exists(self, ctx, old, region):
        volume_filter = [{"Name": "volume-id", "Values": [old.inputs["volumeId"]]}]
        volumes = ctx.client("ec2", region).describe_volumes(Filters=volume_filter)["Volumes"]
        return any(a.get("InstanceId") == old.inputs["instanceId"] for v in volumes for a in v.get("Attachments", []))

    def find(self, ctx, reg, region):
        inputs = reg.inputs
        volume_filter = [{"Name": "volume-id", "Values": [inputs["volumeId"]]}]
        volumes = ctx.client("ec2", region).describe_volumes(Filters=volume_filter)["Volumes"]
        if any(a.get("InstanceId") == inputs["instanceId"] for v in volumes for a in v.get("Attachments", [])):
            return attachment_id(inputs["deviceName"], inputs["instanceId"], inputs["volumeId"]), dict(inputs)
        return None
