"""Sandbox image tags: content hashes that change when, and only when, an image's recipe does."""

from __future__ import annotations

import shutil

from provisioner.engines.sandbox import images


def test_airflow_tag_follows_its_own_constraints_and_requirements_only(tmp_path, monkeypatch):
    shutil.copytree(images.TEMPLATES, tmp_path / "sandbox")
    monkeypatch.setattr(images, "TEMPLATES", tmp_path / "sandbox")
    before = images.airflow_image_ref("2.10.5")
    (tmp_path / "sandbox" / "airflow" / "constraints-3.0.6.txt").write_text("apache-airflow==3.0.6\n")
    (tmp_path / "sandbox" / "airflow" / "requirements-3.txt").write_text("asyncpg\n")
    assert images.airflow_image_ref("2.10.5") == before  # adding another version rebuilds nothing
    airflow3 = images.airflow_image_ref("3.0.6")
    (tmp_path / "sandbox" / "airflow" / "requirements-3.txt").write_text("asyncpg\nsomething-else\n")
    assert images.airflow_image_ref("3.0.6") != airflow3 and images.airflow_image_ref("2.10.5") == before
    with open(tmp_path / "sandbox" / "airflow" / "constraints-2.10.5.txt", "a") as constraints:
        constraints.write("# repinned\n")
    assert images.airflow_image_ref("2.10.5") != before
    assert images.airflow_image_ref("3.0.6").startswith("envctl/sandbox-airflow:3.0.6-")
