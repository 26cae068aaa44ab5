"""envctl: one segregated AWS environment per team (Airflow host, SageMaker, inference)."""

__version__ = "0.1.0"
