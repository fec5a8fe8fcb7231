"""aspose-cloud: Aspose.OCR Cloud (REST API v5) through the `aspose-ocr-cloud` SDK.

A page is sent as a PNG (scaled down first if a side exceeds `max_side`), recognised as an
asynchronous task (submit, then poll until done or until the deadline), and read back as hOCR,
which gives lines, words, boxes and, when the service provides them, confidences. Boxes are mapped
back to the page's own pixels. Paragraphs/areas in the hOCR become `PageResult.blocks`.

Credentials come from ASPOSE_CLIENT_ID / ASPOSE_CLIENT_SECRET only. A missing or refused credential
raises `EngineError` when the engine is built (the worker fails at start); a page the service keeps
failing raises `AsposePageError`, which the pipeline records as a failure for that page.
"""

from __future__ import annotations

import base64
import binascii
import io
import logging
import os
import random
import time
from collections.abc import Callable
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import urllib3
from PIL import Image
from pydantic import SecretStr
from tenacity import Retrying, retry_if_exception, stop_after_attempt

from manuscribe.engines.aspose_auth import AsposeAuth, RateLimiter, TokenUnavailable
from manuscribe.engines.base import EngineError, Hints, PageResult
from manuscribe.engines.hocr_input import HocrError, HocrPage, parse_hocr, to_page_result

log = logging.getLogger(__name__)

ENV_ID, ENV_SECRET = "ASPOSE_CLIENT_ID", "ASPOSE_CLIENT_SECRET"


class AsposePageError(RuntimeError):
    """One page could not be recognised (service kept failing, task failed, malformed result)."""


def _transient(exc: BaseException) -> bool:
    from aspose_ocr_cloud.exceptions import ApiException

    if isinstance(exc, ApiException):
        return exc.status in (408, 429) or (exc.status or 0) >= 500
    return isinstance(exc, urllib3.exceptions.HTTPError)  # timeouts, refused/reset connections


def _describe(exc: BaseException) -> str:
    status = getattr(exc, "status", None)
    if status:
        return f"HTTP {status}"
    return type(exc).__name__


class AsposeCloudEngine:
    name = "aspose-cloud"
    remote = True  # pages leave the machine and every call is billed: avoid needless re-reads

    def __init__(
        self,
        base_url: str = "https://api.aspose.cloud",
        *,
        language: str = "HWT_ENG",
        poll_timeout: float = 120.0,
        poll_interval: float = 1.0,
        retries: int = 5,
        backoff: float = 1.0,
        backoff_max: float = 30.0,
        requests_per_second: float = 2.0,
        request_timeout: float = 60.0,
        max_side: int = 4096,
        client_id: str | None = None,
        client_secret: str | None = None,
    ):
        try:
            import aspose_ocr_cloud as sdk
        except ImportError as exc:
            raise EngineError(
                "the aspose-cloud engine needs the aspose-ocr-cloud package: "
                "pip install 'manuscribe[aspose]'"
            ) from exc
        client_id = client_id if client_id is not None else os.environ.get(ENV_ID, "")
        # wrapped at once, so that no repr, traceback-with-locals or error report shows it
        secret = SecretStr(client_secret or os.environ.get(ENV_SECRET, ""))
        del client_secret
        missing = [n for n, v in ((ENV_ID, client_id), (ENV_SECRET, secret)) if not v]
        if missing:
            raise EngineError(
                f"the aspose-cloud engine needs {' and '.join(missing)} in the environment "
                "(Client Id / Client Secret of an application in the Aspose Cloud dashboard)"
            )
        known = {lang.value for lang in sdk.Language}
        if language not in known:
            raise EngineError(
                f"unknown Aspose language {language!r}; the service knows e.g. HWT_ENG "
                "(handwriting), English, French, German (see aspose_ocr_cloud.Language)"
            )
        self._sdk = sdk
        try:
            self.version = version("aspose-ocr-cloud")
        except PackageNotFoundError:  # pragma: no cover - installed without metadata
            self.version = getattr(sdk, "__version__", "unknown")
        self.base_url = base_url.rstrip("/")
        self.language = language
        self.poll_timeout = poll_timeout
        self.poll_interval = poll_interval
        self.retries = max(1, retries)
        self.backoff = backoff
        self.backoff_max = backoff_max
        self.request_timeout = request_timeout
        self.max_side = max_side
        # The SDK has no default host: it is always ours. Its own urllib3 retries are off so that
        # retrying (with backoff and Retry-After) happens in one place, below.
        config = sdk.Configuration(host=self.base_url)
        config.retries = False
        self._client = sdk.ApiClient(config)
        self._limiter = RateLimiter(requests_per_second)
        self._image_api = sdk.RecognizeImageApi(self._client)
        self._pdf_api = sdk.RecognizePdfApi(self._client)
        self._auth = AsposeAuth(
            self._client.rest_client,
            self.base_url,
            client_id,
            secret,
            limiter=self._limiter,
            request_timeout=request_timeout,
            attempts=min(self.retries, 3),
            backoff=backoff,
        )
        self._auth.token()  # fail now, at worker start, not on the first page

    @classmethod
    def from_settings(cls, settings: Any) -> AsposeCloudEngine:
        def get(name: str, default: Any) -> Any:
            value = getattr(settings, name, None)
            return default if value is None else value

        return cls(
            base_url=get("aspose_base_url", "https://api.aspose.cloud"),
            language=get("aspose_language", "HWT_ENG"),
            poll_timeout=float(get("aspose_timeout", 120.0)),
            poll_interval=float(get("aspose_poll_interval", 1.0)),
            retries=int(get("aspose_retries", 5)),
            backoff=float(get("aspose_backoff", 1.0)),
            backoff_max=float(get("aspose_backoff_max", 30.0)),
            requests_per_second=float(get("aspose_requests_per_second", 2.0)),
            request_timeout=float(get("aspose_request_timeout", 60.0)),
            max_side=int(get("aspose_max_side", 4096)),
        )

    def settings(self) -> dict:
        # what changes the text we get back; never the credentials, and not the host either
        return {
            "api": "v5.0",
            "language": self.language,
            "result_type": "Hocr",
            "skew_correct": False,
            "spell_check": False,
            "image_format": "png",
            "max_side": self.max_side,
        }

    def close(self) -> None:
        self._client.rest_client.pool_manager.clear()

    # --- recognition ---

    def recognize(self, image: Image.Image, hints: Hints) -> PageResult:
        sent = _fit(image, self.max_side)
        buf = io.BytesIO()
        sent.save(buf, format="PNG")
        m = self._sdk.models
        body = m.OCRRecognizeImageBody(
            image=base64.b64encode(buf.getvalue()).decode("ascii"),
            settings=m.OCRSettingsRecognizeImage(**self._task_settings()),
        )
        pages = self._run(self._image_api, "post_recognize_image", "get_recognize_image", body)
        if len(pages) != 1:
            raise AsposePageError(f"Aspose Cloud returned {len(pages)} hOCR pages for one image")
        return to_page_result(pages[0], (image.width, image.height), (sent.width, sent.height))

    def recognize_pdf(
        self, pdf: bytes, page_sizes: list[tuple[int, int]] | None = None
    ) -> list[PageResult]:
        """A whole PDF in one task; boxes are scaled to `page_sizes` (pixels) when given."""
        m = self._sdk.models
        body = m.OCRRecognizePdfBody(
            image=base64.b64encode(pdf).decode("ascii"),
            settings=m.OCRSettingsRecognizePdf(**self._task_settings()),
        )
        pages = self._run(self._pdf_api, "post_recognize_pdf", "get_recognize_pdf", body)
        if page_sizes is not None and len(page_sizes) != len(pages):
            raise AsposePageError(
                f"Aspose Cloud returned {len(pages)} pages for a {len(page_sizes)}-page PDF"
            )
        return [
            to_page_result(p, page_sizes[i] if page_sizes else None, None)
            for i, p in enumerate(pages)
        ]

    def _task_settings(self) -> dict:
        # skew correction and upsampling off: they would move boxes away from our page pixels
        return {
            "language": self._sdk.Language(self.language),
            "make_skew_correct": False,
            "make_upsampling": False,
            "make_spell_check": False,
            "make_binarization": False,
            "result_type": self._sdk.ResultType.HOCR,
        }

    def _run(self, api: Any, post: str, get: str, body: Any) -> list[HocrPage]:
        """Submit a task, poll it until done or the deadline, and parse its hOCR."""
        task_id = self._call("submit", getattr(api, post), body)
        if not isinstance(task_id, str) or not task_id.strip():
            raise AsposePageError("Aspose Cloud accepted the task but returned no task id")
        task_id = task_id.strip().strip('"')
        log.debug("Aspose task %s submitted", task_id)
        status = self._sdk.OCRTaskStatus
        deadline = time.monotonic() + self.poll_timeout
        interval = self.poll_interval
        while True:
            time.sleep(max(0.0, min(interval, deadline - time.monotonic())))
            response = self._call("poll", getattr(api, get), task_id)
            state = getattr(response, "task_status", None)
            if state == status.COMPLETED:
                break
            if state in (status.ERROR, status.NOTEXIST):
                raise AsposePageError(f"Aspose Cloud task {state.value}{_messages(response)}")
            if time.monotonic() >= deadline:
                self._cancel(api, post.replace("post_", "cancel_"), task_id)
                raise AsposePageError(
                    f"Aspose Cloud task did not finish within {self.poll_timeout:g} s "
                    f"(last status {getattr(state, 'value', state)})"
                )
            interval = min(interval * 1.5, self.poll_interval * 4)
        return _parse_result(response)

    def _cancel(self, api: Any, method: str, task_id: str) -> None:
        try:
            self._limiter.acquire()
            getattr(api, method)(
                task_id, _request_auth=self._bearer(), _request_timeout=self.request_timeout
            )
        except Exception as exc:  # best effort: the task expires on the service anyway
            log.debug("could not cancel Aspose task %s: %s", task_id, _describe(exc))

    def _bearer(self) -> dict:
        return {
            "in": "header",
            "type": "oauth2",
            "key": "Authorization",
            "value": "Bearer " + self._auth.token(),
        }

    def _call(self, what: str, fn: Callable[..., Any], *args: Any) -> Any:
        """One API call with a bounded number of tries, backoff, Retry-After and token refresh."""
        unauthorized = self._sdk.exceptions.UnauthorizedException
        retried_401 = False

        def once() -> Any:
            nonlocal retried_401
            self._limiter.acquire()
            try:
                return fn(
                    *args, _request_auth=self._bearer(), _request_timeout=self.request_timeout
                )
            except unauthorized:
                if retried_401:
                    raise EngineError(
                        "Aspose Cloud rejects freshly issued access tokens (HTTP 401); check the "
                        "application's rights in the Aspose Cloud dashboard"
                    ) from None
                retried_401 = True  # the token expired or was revoked early: get a new one
                self._auth.invalidate()
                return once()

        try:
            for attempt in Retrying(
                stop=stop_after_attempt(self.retries),
                wait=self._wait,
                retry=retry_if_exception(_transient),
                reraise=True,
                before_sleep=lambda s: log.warning(
                    "Aspose Cloud %s failed (%s), try %d/%d",
                    what,
                    _describe(s.outcome.exception()),
                    s.attempt_number,
                    self.retries,
                ),
            ):
                with attempt:
                    return once()
        except TokenUnavailable as exc:  # the token service is down for now: this page fails
            raise AsposePageError(str(exc)) from None
        except EngineError:
            raise
        except self._sdk.ApiException as exc:
            tries = f" after {self.retries} tries" if _transient(exc) else ""
            raise AsposePageError(f"Aspose Cloud {what}: {_describe(exc)}{tries}") from None
        except urllib3.exceptions.HTTPError as exc:
            raise AsposePageError(
                f"Aspose Cloud {what}: {_describe(exc)} after {self.retries} tries"
            ) from None
        except ValueError as exc:  # unparseable JSON or a shape the SDK's models reject
            raise AsposePageError(
                f"Aspose Cloud {what}: malformed response ({type(exc).__name__})"
            ) from None

    def _wait(self, state: Any) -> float:
        exc = state.outcome.exception()
        headers = getattr(exc, "headers", None) or {}
        retry_after = headers.get("Retry-After") if hasattr(headers, "get") else None
        if retry_after is not None:
            try:
                return min(max(0.0, float(retry_after)), self.backoff_max)
            except ValueError:
                pass  # an HTTP date: fall back to our own backoff
        delay = self.backoff * 2 ** (state.attempt_number - 1)
        return min(delay, self.backoff_max) * random.uniform(0.8, 1.2)


# --- helpers ---


def _fit(image: Image.Image, max_side: int) -> Image.Image:
    if image.mode not in ("1", "L", "LA", "P", "RGB", "RGBA"):
        image = image.convert("RGB")
    if max_side > 0 and max(image.size) > max_side:
        scale = max_side / max(image.size)
        size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
        image = image.resize(size, Image.Resampling.LANCZOS)
    return image


def _messages(response: Any) -> str:
    error = getattr(response, "error", None)
    msgs = [str(m)[:200] for m in (getattr(error, "messages", None) or [])][:3]
    return f": {'; '.join(msgs)}" if msgs else ""


def _parse_result(response: Any) -> list[HocrPage]:
    results = getattr(response, "results", None) or []
    if not results or not results[0].data:
        raise AsposePageError(f"Aspose Cloud task completed without a result{_messages(response)}")
    data = results[0].data
    if isinstance(data, str):
        data = "".join(data.split())
    try:
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise AsposePageError(
            f"Aspose Cloud result is not valid hOCR ({type(exc).__name__})"
        ) from None
    try:
        return parse_hocr(raw)
    except HocrError as exc:
        raise AsposePageError(f"Aspose Cloud result is not hOCR ({exc})") from None
