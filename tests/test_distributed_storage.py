"""S3Storage against a real SeaweedFS: same behaviour as the local folder, keys kept in bounds."""

from __future__ import annotations

import pytest

from manuscribe.storage import LocalStorage
from manuscribe.storage.s3 import S3Storage
from tests.services import services  # noqa: F401  (session fixture)

pytestmark = pytest.mark.integration


@pytest.fixture
def s3(services, monkeypatch):  # noqa: F811
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", services.weed.key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", services.weed.secret)
    url = f"s3://{services.weed.bucket}/storage-test"
    return S3Storage.from_url(url, endpoint_url=services.weed.endpoint)


def test_s3_storage_behaves_like_the_local_folder(s3, tmp_path):
    local = LocalStorage(tmp_path / "local")
    for storage in (s3, local):
        storage.put("jobs/j/failures/a.page-1.json", b"{}")
        storage.put("jobs/j/manifest.json", b'{"job": "j"}')
        storage.put("jobs/j2/manifest.json", b"x")
        assert storage.get("jobs/j/manifest.json") == b'{"job": "j"}'
        assert storage.exists("jobs/j/manifest.json")
        assert not storage.exists("jobs/j/missing.json")
        with pytest.raises(KeyError):
            storage.get("jobs/j/missing.json")
        assert list(storage.list("jobs/j/")) == [
            "jobs/j/failures/a.page-1.json",
            "jobs/j/manifest.json",
        ]
        assert list(storage.list("jobs/j/manifest.json")) == ["jobs/j/manifest.json"]
        storage.delete("jobs/j/manifest.json")
        assert not storage.exists("jobs/j/manifest.json")
        for bad in ("../x", "/abs", "a//b", "a/../../b"):
            with pytest.raises(ValueError):
                storage.put(bad, b"")


def test_s3_files_round_trip_without_reading_into_memory(s3, tmp_path):
    source = tmp_path / "big.bin"
    source.write_bytes(b"x" * 300_000)
    s3.put_file("sources/abc.pdf", source)
    target = tmp_path / "copy.bin"
    s3.get_file("sources/abc.pdf", target)
    assert target.read_bytes() == source.read_bytes()
    assert not list(tmp_path.glob(".*part"))
    with pytest.raises(KeyError):
        s3.get_file("sources/missing.pdf", tmp_path / "missing")


def test_s3_refuses_unknown_credentials(services, monkeypatch):  # noqa: F811
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "nobody")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wrong")
    monkeypatch.setenv("MANUSCRIBE_S3_MAX_ATTEMPTS", "1")
    storage = S3Storage.from_url(f"s3://{services.weed.bucket}/x", services.weed.endpoint)
    with pytest.raises(Exception, match="InvalidAccessKeyId|AccessDenied|Forbidden"):
        storage.put("a.txt", b"1")
    assert "wrong" not in repr(storage)
