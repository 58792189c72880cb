"""Runnable pipelines around the ``feishu_tasks`` source: CLI, run orchestration, demo."""
