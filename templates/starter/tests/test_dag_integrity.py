"""DAG integrity: the DAGs in ../dags load the way Airflow loads them, and each says who owns it.

Airflow's DagBag records every file that does not load (import and syntax errors) and refuses
DAGs with a cycle or a dag_id another file has already taken: all of them are import errors here.
Runs with pytest, or without it: `python tests/test_dag_integrity.py`.
"""

from __future__ import annotations

import functools
from pathlib import Path

DAGS = Path(__file__).resolve().parents[1] / "dags"


@functools.lru_cache(maxsize=1)
def dagbag():
    try:
        from airflow.models.dagbag import DagBag
    except ImportError:  # later Airflow 3 releases moved it
        from airflow.dag_processing.dagbag import DagBag
    return DagBag(dag_folder=str(DAGS), include_examples=False)


def test_every_file_loads():
    """No import errors: syntax, imports, cycles and duplicate dag_ids all land here."""
    errors = dagbag().import_errors
    assert not errors, "DAG files that do not load:\n" + "\n".join(f"{path}:\n{error}" for path, error in errors.items())


def test_there_are_dags():
    assert dagbag().dags, f"no DAG found under {DAGS}"


def test_no_cycles():
    """Each DAG sorts topologically (DagBag refuses cyclic DAGs; this says which one, should one slip through)."""
    for dag_id, dag in dagbag().dags.items():
        seen: set[str] = set()
        visiting: set[str] = set()

        def visit(task_id: str) -> None:
            assert task_id not in visiting, f"{dag_id}: a cycle through task {task_id}"
            if task_id in seen:
                return
            visiting.add(task_id)
            for downstream in dag.get_task(task_id).downstream_task_ids:
                visit(downstream)
            visiting.discard(task_id)
            seen.add(task_id)

        for task_id in dag.task_ids:
            visit(task_id)


def test_each_dag_has_an_owner_and_tags():
    """An owner other than Airflow's default ("airflow"), and at least one tag, on every DAG."""
    for dag_id, dag in dagbag().dags.items():
        owners = {task.owner for task in dag.tasks}
        assert owners and "airflow" not in owners, f"{dag_id}: set default_args={{'owner': ...}} (owners: {owners})"
        assert dag.tags, f"{dag_id}: give it tags=[...]"


if __name__ == "__main__":
    for name, test in sorted(globals().items()):
        if name.startswith("test_") and callable(test):
            test()
            print(f"ok {name}")
