"""Mends for moto bugs that make the sandbox fail where AWS succeeds (a stand-in must not be
stricter than AWS either), installed in the moto server process at start.

- S3: deleting an object of a bucket whose versioning is suspended drops every version of the key
  and disposes of each; a delete marker among them has no `dispose`, so the request answered 500
  (a team bucket whose versioning resource was deleted first, holding a DAG `envctl dags deploy`
  had removed, could not be emptied by `destroy --delete-data`). A delete marker holds no data.
"""

from __future__ import annotations


def _dispose_nothing(self, garbage: bool = False) -> None:  # noqa: ARG001 - FakeKey.dispose's signature
    """A delete marker has no content to release."""


def install() -> None:
    from moto.s3.models import FakeDeleteMarker

    if not hasattr(FakeDeleteMarker, "dispose"):
        FakeDeleteMarker.dispose = _dispose_nothing  # type: ignore[attr-defined]
