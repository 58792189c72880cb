"""The notebook's charts of the follower views, drawn once for the notebook and the README.

``explore_followers.ipynb`` draws with these functions, and ``make_readme_chart.py`` puts two
of them side by side for the README: the picture there is what the notebook shows.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

BLUE, LIGHT_BLUE = "#3370ff", "#a8c1ff"


def task_labels(tasks: pd.DataFrame) -> pd.Series:
    """Each task's summary, or the start of its id when no table has a summary for it."""
    return tasks["summary"].fillna(tasks["task_id"].str[:8])


def follower_count_distribution(ax: Any, dist: pd.DataFrame) -> None:
    """``fa.follower_count_distribution()``: tasks per bucket of follower counts, all six buckets."""
    bars = ax.bar(dist["bucket"], dist["tasks"], color=BLUE)
    ax.bar_label(bars, fontsize=8)
    ax.set(xlabel="followers per task", ylabel="tasks", title="How many followers a task has")


def most_followed_tasks(ax: Any, top: pd.DataFrame) -> None:
    """``fa.most_followed_tasks(n)``: the most followed first, at the top."""
    ax.barh(task_labels(top)[::-1], top["followers"][::-1], color=BLUE)
    ax.set(xlabel="followers", title="Most-followed tasks")
    ax.tick_params(axis="y", labelsize=8)


def most_active_followers(ax: Any, active: pd.DataFrame) -> None:
    """``fa.most_active_followers(n)``: tasks followed now and ever; the legend beside, not on, the bars."""
    rows = active.iloc[::-1]
    who = rows["follower_id"].str[:12]
    height = 0.4
    positions = range(len(rows))
    ax.barh([p + height / 2 for p in positions], rows["tasks_now"], height, color=BLUE, label="now")
    ax.barh([p - height / 2 for p in positions], rows["tasks_ever"], height, color=LIGHT_BLUE, label="ever")
    ax.set_yticks(list(positions), who, fontsize=8)
    ax.set(xlabel="tasks followed", title="Most active followers")
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)


def plain(*axes: Any) -> None:
    for ax in axes:
        ax.spines[["top", "right"]].set_visible(False)
