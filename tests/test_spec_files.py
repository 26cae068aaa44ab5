"""Hostile or unreadable request files: each gives one `stacks/<file>: (file): ...` error and exit 2.

No traceback, whatever the bytes: binary or non-UTF-8 text, nesting or alias bombs that would
exhaust PyYAML's recursion or memory, files too large to be a request, empty files, several
documents, documents that are not a mapping.
"""

from __future__ import annotations

import shutil

import pytest
import yaml
from typer.testing import CliRunner

from provisioner.cli.main import app
from provisioner.spec import (
    MAX_NESTING,
    MAX_NODES,
    MAX_REQUEST_BYTES,
    UnreadableRequest,
    load_request_text,
    validate_files,
)
from tests.conftest import ROOT

FRAUD_TEXT = (ROOT / "stacks" / "fraud.yaml").read_text()


def deep_list(depth: int) -> bytes:
    return b"a: " + b"[" * depth + b"]" * depth + b"\n"


def billion_laughs(levels: int = 9) -> bytes:
    lines = [b'a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, levels):
        lines.append(b"a%d: &a%d [%s]" % (i, i, b",".join([b"*a%d" % (i - 1)] * 9)))
    return b"\n".join(lines) + b"\n"


# name -> (file content, words the one error must contain)
HOSTILE: dict[str, tuple[bytes, str]] = {
    "binary": (bytes(range(256)) * 4, "is a binary file"),
    "latin1": ("team: café\n".encode("latin-1"), "is not UTF-8 text (byte 0xe9 at line 1"),
    "utf16": ("team: fraud\n".encode("utf-16"), "is UTF-16 text; save the request as UTF-8"),
    "deep5000": (deep_list(5000), f"nested deeper than {MAX_NESTING} levels at line 1"),
    "deep8000": (deep_list(8000), f"nested deeper than {MAX_NESTING} levels at line 1"),
    "deepmap": (b"a:\n" + b"".join(b"  " * i + b"b:\n" for i in range(1, 40)), f"nested deeper than {MAX_NESTING} levels"),
    "laughs": (billion_laughs(), f"expands to more than {MAX_NODES} values (each alias counts as a copy"),
    "recursive": (b"a: &a [*a]\n", "the alias *a at line 1, column 8 refers to a value that contains it"),
    "oversize": (b"# " + b"x" * MAX_REQUEST_BYTES + b"\n", f"a request is at most {MAX_REQUEST_BYTES} bytes (64 KiB)"),
    "empty": (b"", "is empty; a request needs at least apiVersion"),
    "comments": (b"# only a comment\n---\n", "is empty; a request needs at least apiVersion"),
    "twodocs": (FRAUD_TEXT.encode() + b"---\n" + FRAUD_TEXT.encode(), "holds more than one YAML document"),
    "alist": (b"- apiVersion: envctl/v1\n- team: alist\n",
              "must be a mapping of fields (apiVersion, team, owners, ...), got a list"),
    "ascalar": (b"just a sentence\n", "must be a mapping of fields (apiVersion, team, owners, ...), got a string"),
    "hugeint": (b"budget_usd_month: " + b"9" * 5000 + b"\n", "cannot read the value at line 1, column 19 as int"),
    "baddate": (b"team: baddate\nwhen: 2026-13-01\n", "cannot read the value at line 2, column 7 as timestamp"),
    "badtag": (b"team: !!timestamp hello\n", "cannot read the value at line 1, column 7 as timestamp; remove the tag"),
    "emptyint": (b'budget_usd_month: !!int ""\n', "cannot read the value at line 1, column 19 as int; remove the tag"),
}


def errors_for(tmp_path, *paths):
    _, errors = validate_files(list(paths), default_region="eu-west-1", pool="10.0.0.0/8", prefix=20, root=tmp_path)
    return errors


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_file_is_one_clean_error_naming_the_file(tmp_path, name):
    """Each unreadable kind of file gives exactly one error, prefixed with the file and (file), that says why."""
    content, words = HOSTILE[name]
    path = tmp_path / "stacks" / f"{name}.yaml"
    path.parent.mkdir()
    path.write_bytes(content)
    (error,) = errors_for(tmp_path, path)
    assert error.startswith(f"stacks/{name}.yaml: (file): "), error
    assert words in error, error


def test_oversize_file_is_refused_from_its_size_without_reading_it(tmp_path):
    """A 1 GiB (sparse) file is refused from its size alone: nothing of it is read or parsed."""
    path = tmp_path / "huge.yaml"
    with path.open("wb") as handle:
        handle.truncate(1 << 30)
    assert errors_for(tmp_path, path) == [
        f"huge.yaml: (file): is {1 << 30} bytes; a request is at most {MAX_REQUEST_BYTES} bytes (64 KiB): "
        "one team's fields, a few dozen lines"
    ]


def test_a_file_at_the_size_limit_is_still_parsed(tmp_path):
    """The limit is inclusive: a valid request padded with a comment to exactly 64 KiB validates."""
    text = FRAUD_TEXT + "#" * (MAX_REQUEST_BYTES - len(FRAUD_TEXT.encode()) - 1) + "\n"
    path = tmp_path / "fraud.yaml"
    path.write_text(text)
    assert path.stat().st_size == MAX_REQUEST_BYTES
    assert errors_for(tmp_path, path) == []


def test_a_directory_named_like_a_request_is_refused(tmp_path):
    """`stacks/x.yaml/` (a folder) is not read as a request."""
    (tmp_path / "odd.yaml").mkdir()
    assert errors_for(tmp_path, tmp_path / "odd.yaml") == ["odd.yaml: (file): is not a regular file; a request is a YAML file"]


def test_nesting_limit_leaves_room_for_every_real_request():
    """The deepest field of a request (sagemaker.inference.instance.autoscaling.min) loads, and
    so does a value nested right up to the limit."""
    deepest = yaml.safe_load(FRAUD_TEXT)["sagemaker"]["inference"]["instance"]["autoscaling"]["min"]
    assert load_request_text(FRAUD_TEXT)["sagemaker"]["inference"]["instance"]["autoscaling"]["min"] == deepest
    lists = MAX_NESTING - 1  # the mapping is level 1, its value the outermost list at level 2
    assert load_request_text("a: " + "[" * lists + "]" * lists + "\n")
    with pytest.raises(UnreadableRequest, match="nested deeper"):
        load_request_text("a: " + "[" * (lists + 1) + "]" * (lists + 1) + "\n")


def test_ordinary_aliases_still_load():
    """Anchors and aliases are YAML: a few of them are read, only their blow-up is refused."""
    assert load_request_text("a: &x [1, 2]\nb: *x\nc: {<<: {d: 1}}\n") == {"a": [1, 2], "b": [1, 2], "c": {"d": 1}}


def test_utf8_with_a_byte_order_mark_is_read(tmp_path):
    """Editors that write a UTF-8 BOM produce a readable request."""
    path = tmp_path / "fraud.yaml"
    path.write_bytes(b"\xef\xbb\xbf" + FRAUD_TEXT.encode())
    assert errors_for(tmp_path, path) == []


def test_no_mix_of_yaml_pieces_escapes_as_an_exception(tmp_path):
    """500 random mixes of YAML syntax, tags, anchors, odd characters and bytes: each gives errors
    naming the file, none raises (the kinds above were found this way)."""
    import random

    pieces = ["a", ":", " ", "\n", "- ", "[", "]", "{", "}", ",", "&x ", "*x", "!!int ", "!!binary ", "!!timestamp ",
              "!!float ", "!!set ", "!!omap ", "!!pairs ", "!!python/object ", "<<: ", "? ", "---\n", "...\n", "'", '"',
              "\\", "#", "\t", "1e9999", "9" * 5000, "2026-13-40", "~", "%YAML 1.1\n", "!x ", "|", ">", "\xe9",
              "\x00", "\ufeff", "\u2028", "apiVersion: envctl/v1\n", "team: t\n"]
    rnd = random.Random(20261202)
    path = tmp_path / "t.yaml"
    for _ in range(500):
        text = "".join(rnd.choice(pieces) for _ in range(rnd.randint(1, 40)))
        path.write_bytes(text.encode() if rnd.random() < 0.95 else rnd.randbytes(50))
        errors = errors_for(tmp_path, path)
        assert errors and all(e.startswith("t.yaml: ") for e in errors), (text, errors)


def test_the_old_side_of_a_change_uses_the_same_bounded_loader():
    """A hostile request at a pull request's base is 'no valid request', not a crash."""
    from provisioner.pull_requests.notable import parse_old_request

    assert parse_old_request(deep_list(8000).decode()) is None
    assert parse_old_request(billion_laughs().decode()) is None
    assert parse_old_request(FRAUD_TEXT).team == "fraud"


# ------------------------------------------------------------------ through the command line


@pytest.fixture
def project(tmp_path, monkeypatch):
    """The example project plus every hostile file in its stacks/ folder."""
    shutil.copytree(ROOT / "stacks", tmp_path / "stacks")
    shutil.copy(ROOT / "envctl.toml", tmp_path / "envctl.toml")
    for name, (content, _) in HOSTILE.items():
        (tmp_path / "stacks" / f"{name}.yaml").write_bytes(content)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("ENVCTL_CONFIG", raising=False)
    return tmp_path


def assert_clean_exit_2(result):
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit), repr(result.exception)  # not an escaped exception
    assert "Traceback" not in result.output


def assert_file_error(text, name):
    (line,) = [line for line in text.splitlines() if f"stacks/{name}.yaml: (file): " in line]
    assert line.startswith(f"  stacks/{name}.yaml: (file): ") and HOSTILE[name][1] in line, line


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_validate_one_hostile_file_exits_2_with_its_path(project, name):
    """`envctl validate stacks/<file>` prints the file's error under the path as given and exits 2."""
    result = CliRunner().invoke(app, ["validate", f"stacks/{name}.yaml"])
    assert_clean_exit_2(result)
    assert_file_error(result.output, name)


def test_validate_the_folder_lists_every_hostile_file_and_exits_2(project):
    """`envctl validate` over stacks/ names each bad file once; the good examples are not blamed."""
    result = CliRunner().invoke(app, ["validate"])
    assert_clean_exit_2(result)
    for name in HOSTILE:
        assert_file_error(result.output, name)
    assert "stacks/fraud.yaml" not in result.output


@pytest.mark.parametrize("command", [["preview", "{team}", "--offline"], ["preview", "{team}"], ["create", "{team}"],
                                     ["update", "{team}"]])
@pytest.mark.parametrize("team", ["deep8000", "binary", "laughs"])
def test_commands_that_load_one_team_refuse_its_hostile_file(project, command, team):
    """preview, create and update go through the same loader: exit 2, the file's error, nothing started."""
    result = CliRunner().invoke(app, [part.format(team=team) for part in command])
    assert_clean_exit_2(result)
    assert_file_error(result.output, team)
    assert not (project / ".envctl").exists()  # no state, no sandbox


def test_good_teams_still_preview_beside_hostile_files(project):
    """A hostile file of another team does not stop fraud's offline preview."""
    result = CliRunner().invoke(app, ["preview", "fraud", "--offline", "--json"])
    assert result.exit_code == 0, result.output


def test_plan_reports_hostile_files_and_exits_2(project):
    """`envctl plan <files>` validates all of stacks/, names each hostile file, exits 2, starts nothing."""
    result = CliRunner().invoke(app, ["plan", "stacks/deep8000.yaml", "stacks/binary.yaml"])
    assert_clean_exit_2(result)
    for name in HOSTILE:
        assert f"stacks/{name}.yaml: (file): " in result.output, name
    assert not (project / ".envctl").exists()
