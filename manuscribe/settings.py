"""One settings object for every entry point.

Precedence (lowest first): defaults in `config/manuscribe.toml` (or the file named by
`MANUSCRIBE_CONFIG`), environment variables `MANUSCRIBE_*`, then CLI flags (passed as overrides).
Secrets (Aspose, S3 keys, Flower password) are read from the environment by the code that needs them
and never stored here, so a settings dump can be logged or written into outputs safely.
"""

from __future__ import annotations

import os
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

REPO_CONFIG = Path(__file__).resolve().parent.parent / "config" / "manuscribe.toml"


def config_file() -> Path | None:
    explicit = os.environ.get("MANUSCRIBE_CONFIG")
    if explicit:
        return Path(explicit)
    return REPO_CONFIG if REPO_CONFIG.exists() else None


def cache_root(cache_dir: str = "") -> Path:
    """Where a process keeps its local copies (job sources, fetched models): the `cache_dir`
    setting, else ~/.cache/manuscribe."""
    return Path(cache_dir).expanduser() if cache_dir else Path.home() / ".cache" / "manuscribe"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MANUSCRIBE_", extra="ignore")

    # services (names from the design's table)
    broker_url: str = "redis://localhost:6379/0"
    storage_url: str = "./manuscribe-data"
    s3_endpoint_url: str | None = None
    aspose_base_url: str = "https://api.aspose.cloud"
    aspose_language: str = "HWT_ENG"  # the service's handwriting model
    aspose_timeout: float = 120.0  # seconds one page's task may take
    aspose_poll_interval: float = 1.0
    aspose_retries: int = 5  # tries per HTTP call
    aspose_backoff: float = 1.0  # first retry delay, doubled each try
    aspose_backoff_max: float = 30.0
    aspose_requests_per_second: float = 2.0  # per worker process; 0 = no limit
    aspose_request_timeout: float = 60.0
    aspose_max_side: int = 4096  # longer pages are scaled down before upload

    # distributed mode (see docs/distributed.md)
    visibility_timeout: int = 30  # seconds; live workers renew leases, so this is not task length
    lease_interval: int = 5  # seconds between lease renewals
    task_retries: int = 5  # transient-error retries of one task
    retry_rounds: int = 3  # how often `manuscribe retry` may re-run a failed page
    correct_batch_pages: int = 32  # page tasks a correct worker gathers into one batch
    cache_dir: str = ""  # local copies of sources and models; "" = cache_root()
    cache_mb: int = 2048
    s3_max_attempts: int = 12

    # recognition
    engine: str = "rapidocr"
    # the line recogniser: default | ppocr | PATH | storage:KEY (see engines/rec_models.py);
    # with engine=kraken also a kraken model: PATH.mlmodel | PATH.safetensors | doi:DOI
    ocr_model: str = "default"
    # kraken's segmentation model: "" = the baseline model kraken ships (blla) | PATH | storage:KEY
    seg_model: str = ""
    kraken_device: str = "cpu"  # where kraken's networks run: cpu | cuda | cuda:N
    # how much of kraken's segmenter input the page fills (the rest is padding below): 1.0 is
    # kraken's own behaviour, 0.5 keeps large script whole; with several, the page is segmented
    # at each and the lines that cover most of its ink win (docs/kraken.md)
    seg_page_heights: list[Annotated[float, Field(gt=0.1, le=1.0)]] = Field(
        default_factory=lambda: [1.0, 0.5], min_length=1
    )
    # rapidocr's line detector (DB): the mean text probability a line box must reach, and how far
    # a box is grown around its text. rapidocr's stock values (0.5, 1.6) drop faint handwritten
    # lines and make boxes taller than the line; these were chosen on the training collections'
    # held-out pages (docs/models.md, "Line detection")
    ocr_det_box_thresh: Annotated[float, Field(gt=0, lt=1)] = 0.3
    ocr_det_unclip_ratio: Annotated[float, Field(ge=1, le=3)] = 1.2
    # also read each line with rapidocr's printed-text recogniser, keep the more confident reading
    ocr_second_opinion: bool = True
    # ...which wins only where it is this much more confident (the LM-decoded handwriting reading
    # is better than its greedy confidence says; chosen on the held-out pages, docs/models.md)
    ocr_second_opinion_margin: Annotated[float, Field(ge=0, le=1)] = 0.1
    # decode lines by beam search with the character language model the recogniser carries
    # (engines/ctc_decoder.py); false = greedy, the likeliest character of each frame
    ocr_language_model: bool = True
    dpi: int = 200
    lang: str | None = None  # language hint, ISO 639-1
    languages: list[str] = Field(
        default_factory=lambda: ["fr", "en", "de", "es", "it", "nl", "pt", "la", "ja"]
    )
    max_pixels: int = 90_000_000  # a page larger than this is refused (decompression bombs)
    max_file_mb: int = 2048
    preprocess: Literal["auto", "always", "never"] = "auto"
    preprocess_below: float = 0.55  # page confidence under which `auto` tries preprocessing
    tesseract_lang: str = "fra+eng"
    threads: int = 0  # engine threads per worker; 0 = cores / jobs

    # correction
    corrector: str = "auto"
    model: str = "Qwen/Qwen2.5-3B-Instruct"
    model_revision: str | None = None
    device: str = "auto"
    keep_historical_spelling: bool = True
    glossary: list[str] = Field(default_factory=list)
    batch_tokens: int = 4096
    max_new_tokens: int = 256
    guard_max_edit_ratio: float = 0.35
    guard_min_length_ratio: float = 0.7
    guard_max_length_ratio: float = 1.3
    guard_min_confidence: float = 0.2
    guard_lexicon: bool = True  # a changed word must become a real word (pyspellchecker lists)
    gguf_model: str | None = None  # hub repo of the GGUF; None = "<model>-GGUF"
    gguf_revision: str | None = None
    llamacpp_n_ctx: int = 4096
    gguf_file: str = "qwen2.5-3b-instruct-q8_0.gguf"
    gpu_layers: int = 25
    openai_base_url: str = "http://localhost:8000/v1"
    openai_concurrency: int = 8

    # output
    formats: list[str] = Field(default_factory=lambda: ["json", "txt"])
    jobs: int = 0  # pages in parallel; 0 = cores

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        path = config_file()
        if path is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=path))
        return tuple(sources)

    @cached_property
    def cores(self) -> int:
        return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()

    @property
    def effective_jobs(self) -> int:
        return self.jobs if self.jobs > 0 else self.cores

    @property
    def effective_threads(self) -> int:
        return self.threads if self.threads > 0 else max(1, self.cores // self.effective_jobs)


def load_settings(**overrides: Any) -> Settings:
    """Settings with CLI overrides applied; `None` means "flag not given"."""
    return Settings(**{k: v for k, v in overrides.items() if v is not None})
