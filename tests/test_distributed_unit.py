"""Distributed-mode pieces that need no services: names, defaults, security refusals."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from manuscribe.cli import app
from manuscribe.settings import load_settings
from manuscribe.storage.keys import result_key
from manuscribe.storage.s3 import parse_s3_url
from producer.submit import SubmitError, _unique, check_job_name
from workers.app import make_app, option
from workers.defaults import ocr_split, worker_argv


def test_job_names_cannot_escape_their_prefix():
    assert check_job_name("batch-2024.01") == "batch-2024.01"
    for bad in ("../etc", "a/b", "x y", ".."):
        with pytest.raises(SubmitError):
            check_job_name(bad)
    # input names are sanitised into one path component under the job's results
    assert result_key("j", "../../etc/passwd", "txt") == "results/j/etc_passwd.txt"


def test_output_names_stay_unique_after_sanitising():
    used: set[str] = set()
    assert [_unique(n, used) for n in ("a/x", "a_x", "a/x")] == ["a/x", "a_x-2", "a/x-3"]


def test_s3_urls_refuse_credentials():
    assert parse_s3_url("s3://bucket/some/prefix/") == ("bucket", "some/prefix")
    with pytest.raises(ValueError):
        parse_s3_url("s3://key:secret@bucket/x")


def test_reliability_settings_of_the_celery_app():
    conf = make_app(load_settings(broker_url="redis://:pw@localhost:1/0")).conf
    assert conf.task_acks_late and conf.task_reject_on_worker_lost
    assert conf.worker_prefetch_multiplier == 1
    assert conf.broker_transport_options["visibility_timeout"] == 30
    assert conf.broker_transport_options["unacked_restore_throttle"] == 1
    tls = make_app(load_settings(broker_url="rediss://:pw@redis.example:6380/0")).conf
    assert tls.broker_use_ssl


def test_worker_defaults_per_queue(monkeypatch):
    settings = load_settings()
    assert ocr_split("tesseract", 8) == ("prefork", 8, 1)
    pool, processes, threads = ocr_split("rapidocr", 8)
    assert pool == "prefork" and 1 <= processes <= 8 and threads == 1
    argv, env = worker_argv("correct", settings, ["--concurrency", "2"])
    assert argv[argv.index("--pool") + 1] == "threads"
    assert argv[-2:] == ["--concurrency", "2"]  # the operator's options come last and win
    assert env["MANUSCRIBE_WORKER_QUEUE"] == "correct"
    argv, env = worker_argv("ocr", settings, [])
    assert argv[argv.index("--prefetch-multiplier") + 1] == "1"
    assert int(env["MANUSCRIBE_THREADS"]) >= 1
    monkeypatch.setenv("MANUSCRIBE_VISIBILITY_TIMEOUT", "7")
    assert option(load_settings(), "visibility_timeout") == 7


def test_flower_refuses_to_start_without_basic_auth(monkeypatch):
    monkeypatch.delenv("FLOWER_BASIC_AUTH", raising=False)
    result = CliRunner().invoke(app, ["flower"])
    assert result.exit_code == 2
    monkeypatch.setenv("FLOWER_BASIC_AUTH", "admin:")
    assert CliRunner().invoke(app, ["flower"]).exit_code == 2


def test_worker_refuses_unknown_queue():
    assert CliRunner().invoke(app, ["worker", "gpu"]).exit_code == 2


def test_status_of_an_embedded_output_folder(tmp_path):
    """`status DIR` on a folder written by `manuscribe run` reads it, with no services at all."""
    import json

    from manuscribe.storage import LocalStorage
    from manuscribe.storage.keys import manifest_key

    cache = LocalStorage(tmp_path / ".manuscribe")
    manifest = {"documents": [{"name": "a", "source": "a.pdf", "sha256": "0", "pages": 2}]}
    cache.put(manifest_key("local"), json.dumps(manifest).encode())
    result = CliRunner().invoke(app, ["status", str(tmp_path), "--json"])
    assert result.exit_code == 0, result.output
    shown = json.loads(result.stdout)
    assert shown["state"] == "done" and shown["pages_total"] == 2
