"""Training for envctl's default container: SageMaker runs `docker run <image> train` (see `serve`).

SageMaker's training contract (bring your own container): the input channels are files under
/opt/ml/input/data/<channel>/, the hyperparameters are /opt/ml/input/config/hyperparameters.json
(every value a string), whatever the job leaves in /opt/ml/model becomes model.tar.gz at the job's
output path, and on error the container writes the reason to /opt/ml/output/failure and exits
non-zero (SageMaker reports that text as the job's FailureReason).

The model is the one app.py serves: `y = weights · x + bias`, fitted by ordinary least squares
(optionally ridge, `l2`) from CSV rows `label,feature1,feature2,...` (a header row is skipped),
written as /opt/ml/model/model.json. Standard library only.

Hyperparameters, all optional: `channel` (default `train`), `l2` (default `0`, ridge penalty on
the weights, not the bias).
"""

from __future__ import annotations

import csv
import json
import math
import os
import sys
from pathlib import Path

ML_ROOT = Path(os.environ.get("ENVCTL_ML_ROOT", "/opt/ml"))  # tests point it at a temporary layout
MODEL_FILE = "model.json"  # what app.py loads
MAX_FAILURE_CHARS = 1024  # SageMaker keeps the first 1024 characters of the failure file


class TrainingError(Exception):
    """A reason the job fails, written to /opt/ml/output/failure."""


def read_hyperparameters(root: Path) -> dict[str, str]:
    path = root / "input" / "config" / "hyperparameters.json"
    if not path.is_file():
        return {}
    try:
        document = json.loads(path.read_text())
    except ValueError as exc:
        raise TrainingError(f"{path} is not valid JSON: {exc}") from None
    if not isinstance(document, dict):
        raise TrainingError(f"{path} must be a JSON object of strings")
    return {str(key): str(value) for key, value in document.items()}


def read_rows(channel_dir: Path) -> list[tuple[float, list[float]]]:
    """(label, features) of every CSV row of every file in the channel, files in name order."""
    if not channel_dir.is_dir():
        raise TrainingError(f"no input channel at {channel_dir}: give the job a channel of that name")
    files = sorted(path for path in channel_dir.rglob("*") if path.is_file())
    rows: list[tuple[float, list[float]]] = []
    for path in files:
        with path.open(newline="") as handle:
            for number, row in enumerate(csv.reader(handle), start=1):
                if not row or all(not cell.strip() for cell in row):
                    continue
                try:
                    values = [float(cell) for cell in row]
                except ValueError:
                    if number == 1:
                        continue  # a header row
                    raise TrainingError(f"{path.name} line {number}: not a number in {row!r}") from None
                if len(values) < 2 or not all(math.isfinite(value) for value in values):
                    raise TrainingError(f"{path.name} line {number}: expected label,feature,... with finite numbers")
                rows.append((values[0], values[1:]))
    if not rows:
        raise TrainingError(f"no data rows in {channel_dir} ({len(files)} files)")
    widths = {len(features) for _, features in rows}
    if len(widths) != 1:
        raise TrainingError(f"rows have different numbers of features: {sorted(widths)}")
    return rows


def fit(rows: list[tuple[float, list[float]]], l2: float = 0.0) -> tuple[list[float], float]:
    """Least squares for [weights..., bias]: solve (XᵀX + l2·I')·θ = Xᵀy (I' leaves the bias out)."""
    width = len(rows[0][1]) + 1  # the features and a constant 1 for the bias
    normal = [[0.0] * width for _ in range(width)]
    target = [0.0] * width
    for label, features in rows:
        x = [*features, 1.0]
        for i in range(width):
            target[i] += x[i] * label
            for j in range(width):
                normal[i][j] += x[i] * x[j]
    for i in range(width - 1):
        normal[i][i] += l2
    theta = solve(normal, target)
    return theta[:-1], theta[-1]


def solve(matrix: list[list[float]], vector: list[float]) -> list[float]:
    """Gaussian elimination with partial pivoting; a singular system is a TrainingError."""
    size = len(vector)
    rows = [[*matrix[i], vector[i]] for i in range(size)]
    scale = max((abs(value) for row in rows for value in row[:size]), default=1.0) or 1.0
    for column in range(size):
        pivot = max(range(column, size), key=lambda r: abs(rows[r][column]))
        if abs(rows[pivot][column]) <= 1e-12 * scale:
            raise TrainingError("the features are linearly dependent (or too few rows): give more varied data or l2 > 0")
        rows[column], rows[pivot] = rows[pivot], rows[column]
        for r in range(column + 1, size):
            factor = rows[r][column] / rows[column][column]
            for c in range(column, size + 1):
                rows[r][c] -= factor * rows[column][c]
    solution = [0.0] * size
    for r in range(size - 1, -1, -1):
        solution[r] = (rows[r][size] - sum(rows[r][c] * solution[c] for c in range(r + 1, size))) / rows[r][r]
    return solution


def train(root: Path = ML_ROOT) -> dict:
    """Fit the model from root/input and write root/model/model.json; returns what was written."""
    hyperparameters = read_hyperparameters(root)
    channel = hyperparameters.get("channel", "train")
    try:
        l2 = float(hyperparameters.get("l2", "0"))
    except ValueError:
        raise TrainingError(f"hyperparameter l2={hyperparameters['l2']!r} is not a number") from None
    if l2 < 0 or not math.isfinite(l2):
        raise TrainingError(f"hyperparameter l2={l2} must be a finite number >= 0")
    rows = read_rows(root / "input" / "data" / channel)
    weights, bias = fit(rows, l2)
    errors = [label - (sum(w * x for w, x in zip(weights, features)) + bias) for label, features in rows]
    model = {
        "weights": weights,
        "bias": bias,
        "training": {"rows": len(rows), "rmse": math.sqrt(sum(e * e for e in errors) / len(errors)), "l2": l2},
    }
    model_dir = root / "model"
    model_dir.mkdir(parents=True, exist_ok=True)
    (model_dir / MODEL_FILE).write_text(json.dumps(model, indent=2) + "\n")
    return model


def main(root: Path = ML_ROOT) -> int:
    try:
        model = train(root)
    except (TrainingError, OSError) as exc:
        output = root / "output"
        output.mkdir(parents=True, exist_ok=True)
        (output / "failure").write_text(str(exc)[:MAX_FAILURE_CHARS])
        print(f"training failed: {exc}", file=sys.stderr)
        return 1
    print(f"trained on {model['training']['rows']} rows: weights={model['weights']} bias={model['bias']} "
          f"rmse={model['training']['rmse']:.4g}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
