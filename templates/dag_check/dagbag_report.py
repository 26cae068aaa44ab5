# Run by `envctl dags deploy` inside the team's Airflow image (python -c, --network none): loads the
# DAG folder with Airflow's own DagBag, as the scheduler/dag-processor does, and prints one line
# `ENVCTL_DAGBAG_REPORT=<json>`: the DAG ids with their files, and every import error (import
# failures, syntax errors, cycles, duplicate dag_ids: DagBag records them all) with a line number.
import json
import os
import re
import sys
import traceback

folder = os.environ["AIRFLOW__CORE__DAGS_FOLDER"]


def line_of(path, detail, dag_id=None):
    """The line the error points at: a SyntaxError's own, else the deepest frame in that file, else
    the line naming the DAG id (duplicates and cycles carry no traceback)."""
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            source = handle.read()
    except OSError:
        return None
    try:
        compile(source, path, "exec")
    except SyntaxError as error:
        return error.lineno
    frames = re.findall(r'File "%s", line (\d+)' % re.escape(path), detail)
    if frames:
        return int(frames[-1])
    for name in ([dag_id] if dag_id else []) + [n.rstrip(".") for n in re.findall(r"DAG:? '?([\w.-]+)'?", detail)]:
        for number, text in enumerate(source.splitlines(), 1):
            if re.search(r"""['"]%s['"]""" % re.escape(name), text):
                return number
    return None


try:
    try:
        from airflow.models.dagbag import DagBag
    except ImportError:  # later Airflow 3 releases moved it
        from airflow.dag_processing.dagbag import DagBag
    bag = DagBag(dag_folder=folder, include_examples=False)
except Exception:  # noqa: BLE001 - Airflow itself did not load: say so, do not pretend the DAGs are fine
    print("ENVCTL_DAGBAG_REPORT=" + json.dumps({"fatal": traceback.format_exc()}))
    sys.exit(0)

errors = []
for path, detail in sorted(bag.import_errors.items()):
    detail = str(detail)
    lines = [text for text in detail.strip().splitlines() if text.strip()]
    errors.append({"file": os.path.relpath(path, folder), "line": line_of(path, detail),
                   "message": lines[-1].strip() if lines else "import error", "detail": detail})
dags = {dag_id: os.path.relpath(dag.fileloc, folder) for dag_id, dag in sorted(bag.dags.items())}
import airflow  # noqa: E402

print("ENVCTL_DAGBAG_REPORT=" + json.dumps({"airflow_version": airflow.__version__, "dags": dags, "errors": errors}))
