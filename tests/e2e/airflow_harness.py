"""Parse the Airflow recipe as Airflow's DAG processor does (and, with ``run``, test one DAG run).

Run by ``test_airflow.py`` in a process of its own, with a Python that has Airflow: Airflow reads
``AIRFLOW_HOME`` once, at import, and ``PipelineTasksGroup`` sets dlt's data folders in the
environment of the whole process. Prints one line of JSON.

    python airflow_harness.py parse|run DAGS_FOLDER [DAG_ID]
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any


def main(mode: str, dags_folder: str, dag_id: str = "feishu_followers") -> None:
    # A metadata database: dlt's Airflow config provider reads an Airflow Variable at parse time.
    subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], check=True, capture_output=True)
    try:
        from airflow.dag_processing.dagbag import DagBag  # Airflow 3
    except ImportError:
        from airflow.models.dagbag import DagBag  # type: ignore[no-redef]

    bag = DagBag(dag_folder=dags_folder)
    report: dict[str, Any] = {"import_errors": {str(k): str(v) for k, v in bag.import_errors.items()}}
    dag = bag.dags.get(dag_id)
    if dag is not None:
        report["downstream"] = {task.task_id: sorted(task.downstream_task_ids) for task in dag.tasks}
        if mode == "run":
            state = dag.test().state
            report["state"] = getattr(state, "value", state)
    print(json.dumps(report))


if __name__ == "__main__":
    main(*sys.argv[1:4])
