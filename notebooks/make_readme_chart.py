"""Regenerate the README's chart from the demo data: ``python notebooks/make_readme_chart.py``.

Runs the same demo as ``feishu-followers demo`` (simulated tenant, 300 tasks, seed 42) into a
temporary folder, so the picture matches what a newcomer sees, and writes a small PNG.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]

from feishu_followers.analytics import FollowerAnalytics  # noqa: E402
from feishu_followers.demo import run_demo  # noqa: E402

OUTPUT = ROOT / "notebooks" / "img" / "followers_per_task.png"


def draw(fa: FollowerAnalytics, output: Path) -> None:
    """Two panels: how many followers tasks have, and the most-followed tasks."""
    dist = fa.follower_count_distribution()
    top = fa.most_followed_tasks(8)
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.6), width_ratios=(1, 1.3))
    bars = left.bar(dist["bucket"], dist["tasks"], color="#3370ff")
    left.bar_label(bars, fontsize=8)
    left.set(xlabel="followers per task", ylabel="tasks", title="How many followers a task has")
    labels = top["summary"].fillna(top["task_id"].str[:8])
    right.barh(labels[::-1], top["followers"][::-1], color="#3370ff")
    right.set(xlabel="followers", title="Most-followed tasks")
    right.tick_params(axis="y", labelsize=8)
    for ax in (left, right):
        ax.spines[["top", "right"]].set_visible(False)
    fig.suptitle("Demo tenant (feishu-followers demo: 300 simulated tasks)", fontsize=10, color="#555555")
    fig.tight_layout()
    output.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(output, dpi=90)
    plt.close(fig)


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        database = str(Path(tmp) / "demo.duckdb")
        run_demo(database, pipelines_dir=str(Path(tmp) / "pipelines"), quiet=True)
        with FollowerAnalytics.open(database) as fa:
            draw(fa, OUTPUT)
    print(f"wrote {OUTPUT.relative_to(ROOT)} ({OUTPUT.stat().st_size // 1024} KB)")


if __name__ == "__main__":
    main()
