"""The fidelity rules, one module per service; importing this package registers them all."""

from provisioner.engines.sandbox.fidelity.rules import cloudwatch, ec2, s3, sagemaker, secretsmanager, sns  # noqa: F401 (registers)
