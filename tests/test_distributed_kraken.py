"""The kraken engine through the distributed mode: a job names the engine and a segmentation
model file; `submit` uploads the model once, a real Celery OCR worker fetches it from S3, loads
kraken once and reads a real page; the result in S3 carries baselines and polygons."""

from __future__ import annotations

import shutil
from importlib import resources

import pytest

from tests.distributed_helpers import cluster
from tests.requires import require_module
from tests.services import services  # noqa: F401  (session fixture)

pytestmark = pytest.mark.integration
require_module("kraken", "make install-test (pip install -e '.[kraken]')")

PAGE = "poilus_AD78_0005-1"


def test_a_kraken_job_with_its_own_segmentation_model(services, dataset, tmp_path):  # noqa: F811
    from manuscribe.engines.rec_models import file_identity
    from manuscribe.settings import load_settings
    from producer.submit import submit

    seg = tmp_path / "my-segmenter.mlmodel"
    shutil.copy(resources.files("kraken").joinpath("blla.mlmodel"), seg)
    with cluster(services, "kraken", tmp_path) as c:
        c.start("ocr", "--concurrency", "1")
        c.start("assemble")
        settings = load_settings(engine="kraken", seg_model=str(seg), corrector="none")
        submit([str(dataset / f"{PAGE}.pdf")], settings, job="kraken", show_progress=False)
        status = c.wait("kraken", timeout=900)
        assert status["state"] == "done", status
        key = f"models/{file_identity(seg)}.mlmodel"
        uploaded = c.objects("models/")
        assert f"{file_identity(seg)}.mlmodel" in uploaded, sorted(uploaded)
        document = c.result_documents("kraken")[PAGE]
    engine = document["engine"]
    assert engine["name"] == "kraken"
    assert engine["settings"]["engine"]["seg"] == {
        "name": f"storage:{key}",
        "sha256": file_identity(seg),
    }
    lines = [ln for block in document["pages"][0]["blocks"] for ln in block["lines"]]
    assert len(lines) >= 8
    assert all(len(ln["baseline"]) >= 2 and len(ln["polygon"]) >= 3 for ln in lines)
    assert sum(len(ln["text"]) for ln in lines) > 100
