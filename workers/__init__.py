"""Celery workers of the distributed mode: the app, the ocr / correct / assemble tasks, leases."""
