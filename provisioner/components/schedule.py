"""AwakeSchedule: a dev environment's `schedule:` as EventBridge Scheduler schedules that start and stop
its Airflow host (and its notebook) through universal targets, with a role that may do only that.

The targets are the EC2 and SageMaker APIs themselves (`arn:aws:scheduler:::aws-sdk:<service>:<action>`,
https://docs.aws.amazon.com/scheduler/latest/UserGuide/managing-targets-universal.html): no function to
run or patch. Starting an instance whose volumes are encrypted with the team's key needs a KMS grant
for EC2, so the role may create one, for AWS resources only.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from provisioner.components.names import TeamNames


@dataclass
class AwakeScheduleArgs:
    team: str
    account_id: pulumi.Input[str]
    region: str
    wake_cron: str  # cron(...) of the start, e.g. "cron(0 7 ? * MON,TUE,WED,THU,FRI *)"
    sleep_cron: str
    timezone: str
    instance_id: pulumi.Input[str]
    kms_key_arn: pulumi.Input[str]
    notebook_name: pulumi.Input[str] | None = None  # None: no notebook
    enabled: bool = True  # False while paused (`envctl pause`): the schedule must not wake the host
    heartbeat_alarm: str = ""  # the scheduler-heartbeat alarm: its actions are off while the host sleeps


def scheduler_policy(account_id: str, region: str, instance_id: str, kms_key_arn: str, notebook_name: str | None,
                     heartbeat_alarm: str = "") -> str:
    statements: list[dict] = [
        {"Sid": "StartStopTheHost", "Effect": "Allow", "Action": ["ec2:StartInstances", "ec2:StopInstances"],
         "Resource": f"arn:aws:ec2:{region}:{account_id}:instance/{instance_id}"},
        {"Sid": "GrantEc2TheTeamKey", "Effect": "Allow", "Action": "kms:CreateGrant", "Resource": kms_key_arn,
         "Condition": {"Bool": {"kms:GrantIsForAWSResource": "true"}}},
    ]
    if heartbeat_alarm:
        statements.append({"Sid": "QuietTheHeartbeatAlarmAtNight", "Effect": "Allow",
                           "Action": ["cloudwatch:DisableAlarmActions", "cloudwatch:EnableAlarmActions"],
                           "Resource": f"arn:aws:cloudwatch:{region}:{account_id}:alarm:{heartbeat_alarm}"})
    if notebook_name:
        statements.append({"Sid": "StartStopTheNotebook", "Effect": "Allow",
                           "Action": ["sagemaker:StartNotebookInstance", "sagemaker:StopNotebookInstance"],
                           "Resource": f"arn:aws:sagemaker:{region}:{account_id}:notebook-instance/{notebook_name}"})
    return json.dumps({"Version": "2012-10-17", "Statement": statements})


class AwakeSchedule(pulumi.ComponentResource):
    def __init__(self, name: str, args: AwakeScheduleArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("envctl:index:AwakeSchedule", name, None, opts)
        names = TeamNames(args.team)
        child = pulumi.ResourceOptions(parent=self)
        trust = pulumi.Output.from_input(args.account_id).apply(lambda account: json.dumps({
            "Version": "2012-10-17", "Statement": [{
                "Effect": "Allow", "Principal": {"Service": "scheduler.amazonaws.com"}, "Action": "sts:AssumeRole",
                "Condition": {"StringEquals": {"aws:SourceAccount": account}}}]}))
        self.role = aws.iam.Role(f"{name}-role", name=f"{names.prefix}-schedule",
                                 description=f"envctl {args.team}: EventBridge Scheduler starts and stops the host",
                                 assume_role_policy=trust, opts=child)
        policy = pulumi.Output.all(args.account_id, args.instance_id, args.kms_key_arn, args.notebook_name).apply(
            lambda v: scheduler_policy(v[0], args.region, v[1], v[2], v[3], args.heartbeat_alarm))
        self.policy = aws.iam.RolePolicy(f"{name}-policy", role=self.role.id, policy=policy, opts=child)
        after_policy = pulumi.ResourceOptions(parent=self, depends_on=[self.policy])
        targets = [("host", "ec2", "startInstances", "stopInstances",
                    pulumi.Output.from_input(args.instance_id).apply(lambda i: json.dumps({"InstanceIds": [i]})))]
        if args.notebook_name is not None:
            targets.append(("notebook", "sagemaker", "startNotebookInstance", "stopNotebookInstance",
                            pulumi.Output.from_input(args.notebook_name).apply(
                                lambda n: json.dumps({"NotebookInstanceName": n}))))
        if args.heartbeat_alarm:
            # The host's heartbeat stops while it sleeps: its alarm tells no one from the sleep to the wake.
            targets.append(("heartbeat-alarm", "cloudwatch", "enableAlarmActions", "disableAlarmActions",
                            json.dumps({"AlarmNames": [args.heartbeat_alarm]})))
        self.schedules: list[aws.scheduler.Schedule] = []
        for what, service, start, stop, target_input in targets:
            for verb, action, cron in (("wake", start, args.wake_cron), ("sleep", stop, args.sleep_cron)):
                self.schedules.append(aws.scheduler.Schedule(
                    f"{name}-{what}-{verb}", name=f"{names.prefix}-{what}-{verb}",
                    description=f"envctl {args.team}: {action} on the request's schedule",
                    schedule_expression=cron, schedule_expression_timezone=args.timezone,
                    flexible_time_window={"mode": "OFF"}, state="ENABLED" if args.enabled else "DISABLED",
                    target={"arn": f"arn:aws:scheduler:::aws-sdk:{service}:{action}", "role_arn": self.role.arn,
                            "input": target_input},
                    opts=after_policy,
                ))
        self.register_outputs({"role_arn": self.role.arn})
