"""The Airflow releases a request may name, and the one it gets when it names none.

Kept free of pydantic and the spec: the CLI's option defaults read it at import time.
"""

DEFAULT_AIRFLOW_VERSION = "2.10.5"
AIRFLOW_VERSION_PATTERN = r"^(2\.(10|11)|3\.[0-9]+)\.[0-9]+$"  # 2.10.x, 2.11.x or 3.x.y
