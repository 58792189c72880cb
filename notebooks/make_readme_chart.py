"""Regenerate the README's chart from the demo data: ``python notebooks/make_readme_chart.py``.

Runs the same demo as ``feishu-followers demo`` (simulated tenant, 300 tasks, seed 42) into a
temporary folder, so the picture matches what a newcomer sees, and draws it with the notebook's
own chart functions (``charts.py``). The figures drawn are also written into the PNG (its
``Description``), so a test can tell whether the committed picture is still what the demo
gives, whatever the matplotlib version renders.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # charts.py, beside this file

import charts  # noqa: E402

from feishu_followers.analytics import FollowerAnalytics  # noqa: E402
from feishu_followers.demo import run_demo  # noqa: E402

OUTPUT = HERE / "img" / "followers_per_task.png"
TOP_TASKS = 8


def figures(fa: FollowerAnalytics) -> dict[str, Any]:
    """What the chart shows, as data: the buckets and the top tasks with their labels."""
    dist = fa.follower_count_distribution()
    top = fa.most_followed_tasks(TOP_TASKS)
    return {
        "buckets": dict(zip(dist["bucket"], map(int, dist["tasks"]), strict=True)),
        "top_tasks": [
            [label, int(n)] for label, n in zip(charts.task_labels(top), top["followers"], strict=True)
        ],
    }


def draw(fa: FollowerAnalytics, output: Path) -> dict[str, Any]:
    """Two panels: how many followers tasks have, and the most-followed tasks; returns ``figures``."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.6), width_ratios=(1, 1.3))
    charts.follower_count_distribution(left, fa.follower_count_distribution())
    charts.most_followed_tasks(right, fa.most_followed_tasks(TOP_TASKS))
    charts.plain(left, right)
    fig.suptitle("Demo tenant (feishu-followers demo: 300 simulated tasks)", fontsize=10, color="#555555")
    fig.tight_layout()
    drawn = figures(fa)
    output.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(output, dpi=90, metadata={"Description": json.dumps(drawn, sort_keys=True), "Software": None})
    plt.close(fig)
    return drawn


def main(output: Path = OUTPUT) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        database = str(Path(tmp) / "demo.duckdb")
        # the demo's load only: its follow phase adds a few followers, not part of the picture
        run_demo(database, pipelines_dir=str(Path(tmp) / "pipelines"), quiet=True, follow=False)
        with FollowerAnalytics.open(database) as fa:
            drawn = draw(fa, output)
    print(f"wrote {output} ({output.stat().st_size // 1024} KB)")
    return drawn


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else OUTPUT)
