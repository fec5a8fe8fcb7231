"""Flower options (tornado config file, read with `--conf`); secrets stay in the environment.

Basic auth comes from FLOWER_BASIC_AUTH (user:password), which Flower reads itself; this file
refuses to load without it, so `celery flower --conf=config/flower.py` cannot start unprotected.
Prometheus metrics are served at /metrics (not behind auth: keep Flower on a private network).
"""

import os

if ":" not in os.environ.get("FLOWER_BASIC_AUTH", ""):
    raise SystemExit("FLOWER_BASIC_AUTH=user:password is required; Flower will not start without")

address = os.environ.get("FLOWER_ADDRESS", "127.0.0.1")
port = int(os.environ.get("FLOWER_PORT", "5555"))
max_tasks = 100000  # tasks kept in memory for the UI
purge_offline_workers = 600  # seconds before a dead worker leaves the dashboard
