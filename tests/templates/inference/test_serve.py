"""The default inference server (templates/inference) as a real gunicorn process on 127.0.0.1."""

from __future__ import annotations

import http.client
import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.fixtures.inference_server import SERVE, spawn_server, wait_for_ping

DEFAULT_PREDICTION_123 = 0.4 * 1 + 0.3 * 2 + 0.2 * 3 + 0.1  # the built-in weights and bias


def call(port: int, method: str, path: str, body: bytes | str = b"", headers: dict | None = None):
    """(status, content type, body) of one request."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, response.getheader("Content-Type"), response.read()
    finally:
        connection.close()


def invoke_json(port: int, document: object, **headers):
    body = json.dumps(document)
    return call(port, "POST", "/invocations", body, {"Content-Type": "application/json", **headers})


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """One server with no model.json (the built-in defaults) for the whole module."""
    running = spawn_server(tmp_path_factory.mktemp("empty-model-dir"))
    wait_for_ping("127.0.0.1", running.port, timeout=20, server=running)
    yield running
    running.close()


def test_ping_answers_200_with_the_model_source(server):
    """/ping is 200 and says the built-in defaults are loaded."""
    status, content_type, body = call(server.port, "GET", "/ping")
    assert (status, content_type) == (200, "application/json")
    assert json.loads(body) == {"status": "healthy", "model": "built-in defaults", "features": 3}


def test_json_instances_give_json_predictions(server):
    """JSON instances in, one prediction per instance out."""
    status, content_type, body = invoke_json(server.port, {"instances": [[1.0, 2.0, 3.0], [0, 0, 0]]})
    assert (status, content_type) == (200, "application/json")
    assert json.loads(body)["predictions"] == pytest.approx([DEFAULT_PREDICTION_123, 0.1])


def test_csv_rows_give_json_predictions_by_default(server):
    """text/csv (one row per line, charset parameter allowed) is read; the answer is JSON."""
    status, _, body = call(
        server.port, "POST", "/invocations", "1,2,3\n0,0,0\n", {"Content-Type": "text/csv; charset=utf-8"}
    )
    assert status == 200
    assert json.loads(body)["predictions"] == pytest.approx([DEFAULT_PREDICTION_123, 0.1])


def test_accept_text_csv_gives_one_prediction_per_line(server):
    """Accept: text/csv answers CSV, one value per line."""
    status, content_type, body = call(
        server.port, "POST", "/invocations", "1,2,3\n0,0,0", {"Content-Type": "text/csv", "Accept": "text/csv"}
    )
    assert (status, content_type) == (200, "text/csv")
    assert [float(line) for line in body.decode().splitlines()] == pytest.approx([DEFAULT_PREDICTION_123, 0.1])


@pytest.mark.parametrize(
    ("body", "content_type", "message"),
    [
        ("{not json", "application/json", "not valid JSON"),
        ('{"rows": [[1, 2, 3]]}', "application/json", '{"instances"'),
        ('{"instances": []}', "application/json", "no instances"),
        ('{"instances": [[1, 2]]}', "application/json", "instance 1 has 2 features; the model expects 3"),
        ('{"instances": [[1, "x", 3]]}', "application/json", "instance 1: could not convert"),
        ('{"instances": [[1, true, 3]]}', "application/json", "not a number: True"),
        ('{"instances": [1, 2, 3]}', "application/json", "instance 1 is not a non-empty list"),
        ("1,2,3\n4,5", "text/csv", "instance 2 has 2 features"),
        ("1,2,nan", "text/csv", "not a finite number"),
    ],
)
def test_bad_input_is_a_400_that_says_what_is_wrong(server, body, content_type, message):
    """Malformed bodies get 400 and a JSON error naming the problem."""
    status, response_type, answer = call(server.port, "POST", "/invocations", body, {"Content-Type": content_type})
    assert (status, response_type) == (400, "application/json")
    assert message in json.loads(answer)["error"]


def test_unsupported_content_type_is_a_415(server):
    """A body type other than JSON or CSV gets 415 and the types it could send."""
    status, _, body = call(server.port, "POST", "/invocations", "<x/>", {"Content-Type": "application/xml"})
    assert status == 415
    assert "application/json or text/csv" in json.loads(body)["error"]


def test_unanswerable_accept_is_a_406(server):
    """Asking only for a response type the server cannot produce gets 406."""
    status, _, _ = invoke_json(server.port, {"instances": [[1, 2, 3]]}, Accept="application/x-protobuf")
    assert status == 406


@pytest.mark.parametrize(("method", "path", "expected"), [("GET", "/invocations", 405), ("GET", "/nope", 404)])
def test_other_routes_are_refused(server, method, path, expected):
    """Only GET /ping and POST /invocations are served."""
    assert call(server.port, method, path)[0] == expected


def test_fifty_parallel_requests_all_succeed(server):
    """50 concurrent invocations all answer 200 with their own correct prediction."""

    def invoke(number: int) -> tuple[int, float]:
        status, _, body = invoke_json(server.port, {"instances": [[number, 0, 0]]})
        return status, json.loads(body)["predictions"][0]

    with ThreadPoolExecutor(max_workers=50) as pool:
        results = list(pool.map(invoke, range(50)))
    assert [status for status, _ in results] == [200] * 50
    assert [prediction for _, prediction in results] == pytest.approx([0.4 * n + 0.1 for n in range(50)])


def test_model_json_in_sm_model_dir_changes_the_predictions(start_server, tmp_path):
    """Weights from $SM_MODEL_DIR/model.json replace the defaults, including their dimension."""
    (tmp_path / "model.json").write_text(json.dumps({"weights": [2.0, -1.0], "bias": 0.5}))
    server = start_server(tmp_path)
    assert json.loads(call(server.port, "GET", "/ping")[2])["model"] == str(tmp_path / "model.json")
    status, _, body = invoke_json(server.port, {"instances": [[3.0, 1.0]]})
    assert status == 200
    assert json.loads(body)["predictions"] == [5.5]


def test_a_broken_model_json_stops_the_server_at_start(tmp_path):
    """A model.json without weights makes the server exit with a message, not serve defaults."""
    (tmp_path / "model.json").write_text('{"bias": 1}')
    server = spawn_server(tmp_path)
    try:
        exit_code = server.process.wait(timeout=20)
        output = server.output()
    finally:
        server.close()
    assert exit_code != 0
    assert f"invalid {tmp_path / 'model.json'}" in output


def test_sigterm_stops_the_server_cleanly(start_server):
    """SIGTERM (what SageMaker and docker stop send) ends gunicorn gracefully with exit code 0.

    One worker, so that /ping answering proves it booted (see test_docker_stop_is_graceful)."""
    server = start_server(workers=1)
    assert server.stop() == 0


def test_serve_rejects_other_commands():
    """A command other than serve or train is refused with the usage."""
    result = subprocess.run([sys.executable, str(SERVE), "predict"], capture_output=True, text=True, timeout=10)
    assert result.returncode != 0
    assert "usage: serve | train" in result.stderr


def test_chunked_bodies_are_read(server):
    """A body without Content-Length (chunked transfer) is read to its end."""
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        chunks = iter([b'{"instances": ', b"[[1, 2, 3]]}"])
        connection.request("POST", "/invocations", chunks, {"Content-Type": "application/json"}, encode_chunked=True)
        response = connection.getresponse()
        assert (response.status, json.loads(response.read())["predictions"]) == (200, pytest.approx([1.7]))
    finally:
        connection.close()


def test_bodies_over_sagemakers_6_mb_limit_are_a_413(server):
    """A declared body above SageMaker's real-time payload limit is refused before it is read."""
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        connection.putrequest("POST", "/invocations")
        connection.putheader("Content-Type", "text/csv")
        connection.putheader("Content-Length", str(6 * 1024 * 1024 + 1))
        connection.endheaders()  # no body sent: the answer must not wait for it
        response = connection.getresponse()
        assert response.status == 413
        assert "exceeds 6291456 bytes" in json.loads(response.read())["error"]
    finally:
        connection.close()
