"""Celery workers: the per-account work of scheduled jobs, run on many processes and machines.

`app.py` builds the Celery app from settings (`celery -A src.app.workers.app ...` works as usual), `tasks.py`
holds the task, `runtime.py` the one event loop and agent a worker process keeps, `dispatch.py` what the
scheduler uses to send a run's tasks.
"""
