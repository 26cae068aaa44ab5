"""Sandbox handlers for the Airflow host: the EC2 instance, its data volume and the attachment."""

from __future__ import annotations

import base64
import hashlib
from typing import Any

from botocore.exceptions import ClientError

from provisioner.engines.sandbox.handlers.base import Handler
from provisioner.engines.sandbox.handlers.catalog import register
from provisioner.engines.sandbox.handlers.common import as_int, compact
from provisioner.engines.sandbox.handlers.ec2 import Ec2Handler, filters

LIVE_STATES = ("pending", "running", "stopping", "stopped")


def user_data_bytes(inputs: dict[str, Any]) -> bytes | None:
    if inputs.get("userDataBase64"):
        return base64.b64decode(inputs["userDataBase64"])
    if inputs.get("userData"):
        return inputs["userData"].encode()
    return None


@register("aws:ec2/instance:Instance")
class InstanceHandler(Ec2Handler):
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
    not_found = ("InvalidInstanceID.NotFound",)
    listing, id_filter, kind = ("describe_instances", "Reservations", "InstanceId"), "instance-id", "instance"

    def create(self, ctx, reg, region):
        ec2 = self.client(ctx, region)
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
            TagSpecifications=self.tag_spec(ctx, reg) + self.tag_spec(ctx, reg, "volume"),
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
        ec2 = self.client(ctx, region)
        inputs = reg.inputs
        if inputs.get("metadataOptions") != old.inputs.get("metadataOptions"):
            ec2.modify_instance_metadata_options(InstanceId=old.id, **self._metadata_options(inputs.get("metadataOptions")))
        if (inputs.get("vpcSecurityGroupIds") or []) != (old.inputs.get("vpcSecurityGroupIds") or []):
            ec2.modify_instance_attribute(InstanceId=old.id, Groups=inputs.get("vpcSecurityGroupIds") or [])
        if bool(inputs.get("monitoring")) != bool(old.inputs.get("monitoring")):
            (ec2.monitor_instances if inputs.get("monitoring") else ec2.unmonitor_instances)(InstanceIds=[old.id])
        self.sync_tags(ctx, reg, old, region)
        instance = ec2.describe_instances(InstanceIds=[old.id])["Reservations"][0]["Instances"][0]
        return self._outputs(ctx, reg, region, instance)

    def delete(self, ctx, old, region):
        if ctx.hosts is not None:
            ctx.hosts.remove(old.id)
        super().delete(ctx, old, region)

    def remove(self, ec2, old):
        ec2.terminate_instances(InstanceIds=[old.id])

    def listed(self, ec2, by):
        """The live (not terminated) instances the filters match."""
        reservations = ec2.describe_instances(Filters=by + filters("instance-state-name", *LIVE_STATES))["Reservations"]
        return [instance for reservation in reservations for instance in reservation["Instances"]]

    def result(self, ctx, reg, region, instance_id, instance):
        return instance_id, self._outputs(ctx, reg, region, instance)

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

    def _outputs(self, ctx, reg, region, instance: dict[str, Any]) -> dict[str, Any]:
        return {
            **reg.inputs, "id": instance["InstanceId"], "arn": self.arn(ctx, region, instance["InstanceId"]),
            "privateIp": instance.get("PrivateIpAddress", ""), "publicIp": instance.get("PublicIpAddress", ""),
            "availabilityZone": instance.get("Placement", {}).get("AvailabilityZone", ""),
            "primaryNetworkInterfaceId": (instance.get("NetworkInterfaces") or [{}])[0].get("NetworkInterfaceId", ""),
        }


@register("aws:ebs/volume:Volume")
class VolumeHandler(Ec2Handler):
    """The encrypted data volume that holds Postgres and outlives host replacements.

    Sandbox: moto stores size, type and encryption; no data is written to it. With sandbox hosts
    on, a sparse file stands for its blocks (deleted with the volume).
    """

    replace_on = ("availabilityZone", "encrypted", "kmsKeyId", "snapshotId")
    not_found, remove_call = ("InvalidVolume.NotFound",), ("delete_volume", "VolumeId")
    listing, id_filter, kind = ("describe_volumes", "Volumes", "VolumeId"), "volume-id", "volume"

    def create(self, ctx, reg, region):
        inputs = reg.inputs
        volume = self.client(ctx, region).create_volume(**compact(
            AvailabilityZone=inputs["availabilityZone"], Size=as_int(inputs.get("size")), VolumeType=inputs.get("type"),
            Encrypted=inputs.get("encrypted"), KmsKeyId=inputs.get("kmsKeyId"), Iops=as_int(inputs.get("iops")),
            TagSpecifications=self.tag_spec(ctx, reg),
        ))
        return volume["VolumeId"], self._outputs(ctx, reg, region, volume["VolumeId"])

    def update(self, ctx, reg, old, region):
        inputs = reg.inputs
        if (inputs.get("size"), inputs.get("type")) != (old.inputs.get("size"), old.inputs.get("type")):
            self.client(ctx, region).modify_volume(
                **compact(VolumeId=old.id, Size=as_int(inputs.get("size")), VolumeType=inputs.get("type")))
        self.sync_tags(ctx, reg, old, region)
        return self._outputs(ctx, reg, region, old.id)

    def delete(self, ctx, old, region):
        super().delete(ctx, old, region)
        if ctx.hosts is not None:
            ctx.hosts.delete_volume(old.id)

    def result(self, ctx, reg, region, volume_id, volume):
        return volume_id, self._outputs(ctx, reg, region, volume_id)

    def _outputs(self, ctx, reg, region, volume_id):
        return {**reg.inputs, "id": volume_id, "arn": self.arn(ctx, region, volume_id)}


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
    service = "ec2"
    not_found = ("InvalidVolume.NotFound", "IncorrectState", "InvalidAttachment.NotFound", "InvalidInstanceID.NotFound")

    def create(self, ctx, reg, region):
        inputs = reg.inputs
        ec2 = self.client(ctx, region)
        ec2.attach_volume(Device=inputs["deviceName"], InstanceId=inputs["instanceId"], VolumeId=inputs["volumeId"])
        if ctx.hosts is not None:
            size = ec2.describe_volumes(VolumeIds=[inputs["volumeId"]])["Volumes"][0]["Size"]
            ctx.hosts.attach_volume(inputs["instanceId"], inputs["volumeId"], inputs["deviceName"], size)
        return attachment_id(inputs["deviceName"], inputs["instanceId"], inputs["volumeId"]), dict(inputs)

    def delete(self, ctx, old, region):
        inputs = old.inputs
        if ctx.hosts is not None:
            ctx.hosts.detach_volume(inputs["instanceId"], inputs["volumeId"])
        super().delete(ctx, old, region)

    def remove(self, ec2, old):
        inputs = old.inputs
        ec2.detach_volume(VolumeId=inputs["volumeId"], InstanceId=inputs["instanceId"], Device=inputs["deviceName"])

    def describe(self, ec2, resource_id, inputs):
        """The volume while it is attached to the instance."""
        volumes = ec2.describe_volumes(Filters=filters("volume-id", inputs["volumeId"]))["Volumes"]
        attached = any(a.get("InstanceId") == inputs["instanceId"] for v in volumes for a in v.get("Attachments", []))
        return volumes[0] if attached else None

    def adoptable_id(self, ctx, reg):
        return attachment_id(reg.inputs["deviceName"], reg.inputs["instanceId"], reg.inputs["volumeId"])

    def result(self, ctx, reg, region, resource_id, volume):
        return resource_id, dict(reg.inputs)


@register("aws:ec2transitgateway/instanceState:InstanceState")
class InstanceStateHandler(Handler):
    """Whether the Airflow host runs (`state`: running | stopped): StopInstances / StartInstances, as the
    AWS provider's aws_ec2_instance_state does; deleting it leaves the instance as it is.

    Sandbox: moto changes the instance's state at once (AWS takes a minute and the provider waits). With
    sandbox hosts on, the host container stops (systemd shuts Airflow down) and starts again (the userdata
    does not run again; the data volume comes back and Airflow's unit starts: host_inventory.py).
    """

    replace_on = ("instanceId",)
    service = "ec2"
    not_found = ("InvalidInstanceID.NotFound",)

    def create(self, ctx, reg, region):
        self._converge(ctx, reg.inputs, region)
        return reg.inputs["instanceId"], dict(reg.inputs)

    def update(self, ctx, reg, old, region):
        self._converge(ctx, reg.inputs, region)
        return dict(reg.inputs)

    def remove(self, ec2, old):
        """Nothing: the instance stays in the state it is in."""

    def describe(self, ec2, resource_id, inputs):
        reservations = ec2.describe_instances(InstanceIds=[resource_id])["Reservations"]
        instances = [i for r in reservations for i in r["Instances"] if i["State"]["Name"] in LIVE_STATES]
        return instances[0] if instances else None

    def adoptable_id(self, ctx, reg):
        return reg.inputs.get("instanceId")

    def result(self, ctx, reg, region, resource_id, described):
        return resource_id, dict(reg.inputs)

    def _converge(self, ctx, inputs, region) -> None:
        wanted, instance_id = inputs["state"], inputs["instanceId"]
        if wanted not in ("running", "stopped"):
            raise ValueError(f"InstanceState {instance_id}: state {wanted!r} is not one of running, stopped")
        ec2 = self.client(ctx, region)
        current = self.describe(ec2, instance_id, inputs)
        if current is None:
            raise ValueError(f"InstanceState: instance {instance_id} does not exist")
        if wanted == "stopped":
            if ctx.hosts is not None:
                ctx.hosts.stop_host(instance_id)
            if current["State"]["Name"] != "stopped":
                ec2.stop_instances(InstanceIds=[instance_id], Force=bool(inputs.get("force", False)))
        else:
            if current["State"]["Name"] != "running":
                ec2.start_instances(InstanceIds=[instance_id])
            if ctx.hosts is not None:
                ctx.hosts.start_host(instance_id)
