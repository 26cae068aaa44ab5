"""envctl's default SageMaker inference app: a linear model behind a plain WSGI application.

SageMaker's bring-your-own-container contract: `GET /ping` answers 200 when the container is
ready, `POST /invocations` answers predictions, model artefacts live under /opt/ml/model
(SM_MODEL_DIR). The model is `y = weights · x + bias`; weights come from
`$SM_MODEL_DIR/model.json` (`{"weights": [...], "bias": 0.0}`) when it exists, else built-in
defaults, so a team's endpoint answers before the team has trained anything.

Requests: `application/json` `{"instances": [[1.0, 2.0, 3.0], ...]}` or `text/csv` (one row per
line). Responses: `{"predictions": [...]}`, or one value per line with `Accept: text/csv`.
Standard library only: gunicorn serves it (see `serve`).
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

MODEL_DIR = Path(os.environ.get("SM_MODEL_DIR", "/opt/ml/model"))
MODEL_FILE = "model.json"
DEFAULT_WEIGHTS = (0.4, 0.3, 0.2)
DEFAULT_BIAS = 0.1
MAX_BODY_BYTES = 6 * 1024 * 1024  # SageMaker's real-time payload limit
JSON_TYPE = "application/json"
CSV_TYPE = "text/csv"


class RequestError(Exception):
    """The request cannot be answered; carries the HTTP status and a one-line reason."""

    def __init__(self, status: str, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class LinearModel:
    weights: tuple[float, ...]
    bias: float
    source: str  # where the weights came from, reported by /ping

    def predict(self, rows: list[list[float]]) -> list[float]:
        for number, row in enumerate(rows, start=1):
            if len(row) != len(self.weights):
                raise RequestError(
                    "400 Bad Request",
                    f"instance {number} has {len(row)} features; the model expects {len(self.weights)}",
                )
        return [sum(w * x for w, x in zip(self.weights, row, strict=True)) + self.bias for row in rows]


def load_model(model_dir: Path = MODEL_DIR) -> LinearModel:
    """The model in model_dir/model.json, or the defaults; a broken model.json fails loudly."""
    path = model_dir / MODEL_FILE
    if not path.is_file():
        return LinearModel(DEFAULT_WEIGHTS, DEFAULT_BIAS, "built-in defaults")
    try:
        document = json.loads(path.read_text())
        weights = tuple(_as_number(w) for w in document["weights"])
        bias = _as_number(document.get("bias", 0.0))
    except (ValueError, KeyError, TypeError) as exc:
        raise SystemExit(f"invalid {path}: expected {{'weights': [numbers], 'bias': number}} ({exc})") from exc
    if not weights:
        raise SystemExit(f"invalid {path}: 'weights' is empty")
    return LinearModel(weights, bias, str(path))


def _as_number(value: object) -> float:
    # bool is an int subclass; true/false in a feature vector is a client bug, not 1.0/0.0
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError(f"not a number: {value!r}")
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(f"not a finite number: {value!r}")
    return number


def parse_json(body: bytes) -> list[list[float]]:
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise RequestError("400 Bad Request", f"body is not valid JSON: {exc}") from exc
    if not isinstance(document, dict) or not isinstance(document.get("instances"), list):
        raise RequestError("400 Bad Request", 'expected {"instances": [[number, ...], ...]}')
    return [_parse_row(row, number) for number, row in enumerate(document["instances"], start=1)]


def parse_csv(body: bytes) -> list[list[float]]:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise RequestError("400 Bad Request", "CSV body is not UTF-8") from None
    rows = [row for row in csv.reader(io.StringIO(text)) if row]
    return [_parse_row(row, number) for number, row in enumerate(rows, start=1)]


def _parse_row(row: object, number: int) -> list[float]:
    if not isinstance(row, list) or not row:
        raise RequestError("400 Bad Request", f"instance {number} is not a non-empty list of numbers")
    try:
        return [_as_number(value) for value in row]
    except ValueError as exc:
        raise RequestError("400 Bad Request", f"instance {number}: {exc}") from exc


PARSERS = {JSON_TYPE: parse_json, CSV_TYPE: parse_csv}


def render(predictions: list[float], media_type: str) -> bytes:
    if media_type == CSV_TYPE:
        return "".join(f"{value!r}\n" for value in predictions).encode()
    return json.dumps({"predictions": predictions}).encode()


def media_type(header: str) -> str:
    """`text/csv; charset=utf-8` -> `text/csv`."""
    return header.split(";", 1)[0].strip().lower()


def negotiate(accept: str) -> str:
    """The response type for an Accept header; JSON unless the client asks for CSV only."""
    accepted = [media_type(part) for part in accept.split(",") if part.strip()]
    if not accepted or any(t in (JSON_TYPE, "*/*", "application/*") for t in accepted):
        return JSON_TYPE
    if any(t in (CSV_TYPE, "text/*") for t in accepted):
        return CSV_TYPE
    raise RequestError("406 Not Acceptable", f"can answer {JSON_TYPE} or {CSV_TYPE}, not {accept}")


def read_body(environ: dict) -> bytes:
    """The request body, at most MAX_BODY_BYTES; without Content-Length (chunked), up to its end."""
    too_large = RequestError("413 Payload Too Large", f"body exceeds {MAX_BODY_BYTES} bytes")
    declared = environ.get("CONTENT_LENGTH")
    length = _content_length(declared) if declared else MAX_BODY_BYTES + 1  # +1 notices a chunked excess
    if declared and length > MAX_BODY_BYTES:
        raise too_large
    body = environ["wsgi.input"].read(length)
    if len(body) > MAX_BODY_BYTES:
        raise too_large
    return body


def _content_length(value: str) -> int:
    if not value.isdigit():
        raise RequestError("400 Bad Request", f"invalid Content-Length {value!r}")
    return int(value)


def invocations(environ: dict, model: LinearModel) -> tuple[str, str, bytes]:
    content_type = media_type(environ.get("CONTENT_TYPE") or JSON_TYPE)
    parser = PARSERS.get(content_type)
    if parser is None:
        raise RequestError("415 Unsupported Media Type", f"send {JSON_TYPE} or {CSV_TYPE}, not {content_type}")
    answer_type = negotiate(environ.get("HTTP_ACCEPT", ""))
    rows = parser(read_body(environ))
    if not rows:
        raise RequestError("400 Bad Request", "no instances in the request")
    return "200 OK", answer_type, render(model.predict(rows), answer_type)


def ping(model: LinearModel) -> tuple[str, str, bytes]:
    body = {"status": "healthy", "model": model.source, "features": len(model.weights)}
    return "200 OK", JSON_TYPE, json.dumps(body).encode()


ROUTES = {
    ("GET", "/ping"): lambda environ, model: ping(model),
    ("POST", "/invocations"): invocations,
}


def make_app(model: LinearModel):
    def application(environ, start_response):
        route = ROUTES.get((environ["REQUEST_METHOD"], environ.get("PATH_INFO", "")))
        try:
            if route is None:
                raise _no_route(environ)
            status, content_type, body = route(environ, model)
        except RequestError as error:
            status, content_type = error.status, JSON_TYPE
            body = json.dumps({"error": error.message}).encode()
        start_response(status, [("Content-Type", content_type), ("Content-Length", str(len(body)))])
        return [body]

    return application


def _no_route(environ: dict) -> RequestError:
    path = environ.get("PATH_INFO", "")
    if any(known_path == path for _, known_path in ROUTES):
        return RequestError("405 Method Not Allowed", f"{environ['REQUEST_METHOD']} is not allowed on {path}")
    return RequestError("404 Not Found", f"no route {path}; use GET /ping or POST /invocations")


# Loaded once per server (gunicorn --preload): a broken model.json stops the container at start.
application = make_app(load_model())
