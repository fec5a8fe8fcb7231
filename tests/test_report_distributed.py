"""The review report in distributed mode: written by the assemble stage under results/<job>/report/
in SeaweedFS, downloaded by `manuscribe results`, and rebuilt by `manuscribe report` over the
download with the sources read back from S3."""

from __future__ import annotations

import os

import pytest
from typer.testing import CliRunner

from manuscribe.cli import app
from manuscribe.report.build import document_slug
from tests.distributed_helpers import cluster, make_inputs
from tests.services import services  # noqa: F401  (session fixture)

pytestmark = pytest.mark.integration
runner = CliRunner()


def test_assemble_writes_the_report_and_results_brings_it_home(services, tmp_path):  # noqa: F811
    from manuscribe.settings import load_settings
    from producer.submit import submit

    good = make_inputs(tmp_path / "in", documents=2, pages=2)
    (tmp_path / "in" / "broken.pdf").write_bytes(b"%PDF-1.7\n1 0 obj broken")
    with cluster(services, "report", tmp_path) as c:
        c.start("ocr", "--concurrency", "1")
        c.start("assemble")
        settings = load_settings(formats=["json", "html"], corrector="none")
        submit([str(tmp_path / "in")], settings, job="review", show_progress=False)
        assert c.wait("review", timeout=120)["state"] == "partial"  # broken.pdf failed
        keys = c.objects("results/review/report/")
        for path in good:
            slug = document_slug(path.stem)
            for name in ("p0001.html", "p0001.jpg", "p0002.html", "p0002.jpg"):
                assert f"docs/{slug}/{name}" in keys
        assert {"index.html", "data/lines.js", "data/order.js", "assets/page.js"} <= set(keys)

        out = tmp_path / "out"
        result = runner.invoke(app, ["results", "review", "--out", str(out)])
        assert result.exit_code == 0, result.output
        index = (out / "report/index.html").read_text()
        assert "broken" in index and "corrupt or truncated PDF" in index  # the failed document
        for path in good:
            assert path.stem in index

        # rebuilt over the download: the scans come from the job's sources in S3
        assert os.environ["MANUSCRIBE_STORAGE_URL"].startswith("s3://")
        (out / "report/docs").rename(tmp_path / "old-docs")
        result = runner.invoke(app, ["report", str(out)])
        assert result.exit_code == 0, result.output
        assert "2 documents, 4 pages" in result.output and "without" not in result.output
        assert (out / "report/docs" / document_slug(good[0].stem) / "p0002.jpg").is_file()
