"""The default container's `train` (templates/inference/train.py) on a temporary /opt/ml layout."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fixtures.inference_server import SERVE

TRUE_WEIGHTS, TRUE_BIAS = (0.8, -0.5, 1.5), 2.0


def training_layout(root: Path, rows: list[list[float]] | None = None, *, channel: str = "train",
                    hyperparameters: dict | None = None, header: bool = True) -> Path:
    """root as /opt/ml: a CSV channel (label first) and the hyperparameters file."""
    data = root / "input" / "data" / channel
    data.mkdir(parents=True)
    if rows is None:
        rng = random.Random(7)
        rows = []
        for _ in range(120):
            x = [rng.uniform(-3, 3) for _ in TRUE_WEIGHTS]
            rows.append([sum(w * v for w, v in zip(TRUE_WEIGHTS, x, strict=True)) + TRUE_BIAS + rng.gauss(0, 0.01), *x])
    lines = (["label,f1,f2,f3"] if header else []) + [",".join(map(str, row)) for row in rows]
    (data / "part-0.csv").write_text("\n".join(lines) + "\n")
    config = root / "input" / "config"
    config.mkdir(parents=True)
    (config / "hyperparameters.json").write_text(json.dumps(hyperparameters or {}))
    return root


def run_train(root: Path) -> subprocess.CompletedProcess:
    """`serve train`, as SageMaker runs the container, with /opt/ml at root."""
    env = {**os.environ, "ENVCTL_ML_ROOT": str(root), "PYTHONDONTWRITEBYTECODE": "1"}
    return subprocess.run([sys.executable, str(SERVE), "train"], env=env, capture_output=True, text=True, timeout=30)


def test_train_fits_the_data_and_writes_the_model_app_loads(tmp_path):
    """The entry's `train` recovers the data's weights and bias into model/model.json, which app.py serves."""
    result = run_train(training_layout(tmp_path))
    assert result.returncode == 0, result.stderr
    model = json.loads((tmp_path / "model" / "model.json").read_text())
    assert model["weights"] == pytest.approx(TRUE_WEIGHTS, abs=0.01)
    assert model["bias"] == pytest.approx(TRUE_BIAS, abs=0.01)
    assert model["training"]["rows"] == 120
    assert not (tmp_path / "output" / "failure").exists()

    sys.path.insert(0, str(SERVE.parent))
    try:
        import app
    finally:
        sys.path.remove(str(SERVE.parent))
    loaded = app.load_model(tmp_path / "model")
    request = json.loads((SERVE.parents[1] / "starter" / "sample-request.json").read_text())
    expected = [sum(w * x for w, x in zip(TRUE_WEIGHTS, row, strict=True)) + TRUE_BIAS for row in request["instances"]]
    assert loaded.predict(request["instances"]) == pytest.approx(expected, abs=0.05)


def test_l2_shrinks_the_weights(tmp_path):
    """The l2 hyperparameter (a string, as SageMaker passes them) is a ridge penalty."""
    plain, ridge = tmp_path / "plain", tmp_path / "ridge"
    assert run_train(training_layout(plain)).returncode == 0
    assert run_train(training_layout(ridge, hyperparameters={"l2": "500"})).returncode == 0
    norm = lambda root: sum(w * w for w in json.loads((root / "model" / "model.json").read_text())["weights"])  # noqa: E731
    assert norm(ridge) < 0.8 * norm(plain)


def test_another_channel_is_read_when_named(tmp_path):
    """hyperparameter channel= picks the input channel; the default is `train`."""
    result = run_train(training_layout(tmp_path, channel="fit", hyperparameters={"channel": "fit"}, header=False))
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "model" / "model.json").is_file()


@pytest.mark.parametrize(("rows", "hyperparameters", "reason"), [
    ([[1.0, 2.0], [2.0, 3.0, 4.0]], {}, "different numbers of features"),
    ([[1.0, 1.0], [2.0, 1.0], [3.0, 1.0]], {}, "linearly dependent"),
    (None, {"channel": "validation"}, "no input channel"),
    (None, {"l2": "lots"}, "l2='lots' is not a number"),
    ([], {}, "no data rows"),
])
def test_a_failing_job_writes_its_reason_and_exits_non_zero(tmp_path, rows, hyperparameters, reason):
    """Bad input: the reason in output/failure (SageMaker's FailureReason), exit code 1, no model."""
    result = run_train(training_layout(tmp_path, rows, hyperparameters=hyperparameters))
    assert result.returncode == 1
    assert reason in (tmp_path / "output" / "failure").read_text()
    assert reason in result.stderr
    assert not (tmp_path / "model" / "model.json").exists()


def test_a_word_in_a_data_row_names_the_file_and_line(tmp_path):
    """Only the first row may be a header; a word later is an error with its line."""
    root = training_layout(tmp_path, [[1.0, 2.0], [2.0, 3.0]])
    path = root / "input" / "data" / "train" / "part-0.csv"
    path.write_text(path.read_text() + "3.0,three\n")
    assert run_train(root).returncode == 1
    assert "part-0.csv line 4" in (root / "output" / "failure").read_text()
