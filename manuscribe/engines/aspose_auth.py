"""OAuth client-credentials tokens for Aspose Cloud, and a per-worker request rate limit.

The `aspose-ocr-cloud` SDK (24.x) takes a ready access token and has no way to fetch one, so this
module does the one POST it lacks: `{base_url}/connect/token` with `grant_type=client_credentials`.
The token is refreshed before it expires. The client secret lives only in this object and in the
body of that POST: it is never logged, never put in an exception message, never returned.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import urllib3
from pydantic import SecretStr

from manuscribe.engines.base import EngineError

log = logging.getLogger(__name__)

TOKEN_PATH = "/connect/token"


class RateLimiter:
    """At most `per_second` requests per second from this worker (0 or less = no limit)."""

    def __init__(self, per_second: float, clock: Callable[[], float] = time.monotonic):
        self.interval = 1.0 / per_second if per_second > 0 else 0.0
        self._clock = clock
        self._next = 0.0
        self._lock = threading.Lock()

    def acquire(self) -> None:
        if self.interval <= 0:
            return
        with self._lock:
            now = self._clock()
            start = max(now, self._next)
            self._next = start + self.interval
        if start > now:
            time.sleep(start - now)


class TokenRefused(EngineError):
    """The token endpoint refused the credentials (or answered with something unusable)."""


class TokenUnavailable(EngineError):
    """The token endpoint could not be reached or kept failing."""


class AsposeAuth:
    """Fetches and caches an access token; `token()` refreshes it shortly before it expires."""

    def __init__(
        self,
        rest_client: Any,
        base_url: str,
        client_id: str,
        client_secret: SecretStr,
        *,
        limiter: RateLimiter | None = None,
        request_timeout: float = 30.0,
        attempts: int = 3,
        backoff: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ):
        # the SDK's RESTClientObject: the same TLS and proxy setup as the API calls
        self._rest = rest_client
        self._url = base_url.rstrip("/") + TOKEN_PATH
        self._client_id = client_id
        self._secret = client_secret
        self._limiter = limiter or RateLimiter(0)
        self._timeout = request_timeout
        self._attempts = max(1, attempts)
        self._backoff = backoff
        self._clock = clock
        self._token: str | None = None
        self._refresh_at = 0.0
        self._lock = threading.Lock()
        self.fetches = 0

    def __repr__(self) -> str:  # never show the credentials
        return f"AsposeAuth(url={self._url!r})"

    def token(self) -> str:
        with self._lock:
            if self._token is None or self._clock() >= self._refresh_at:
                self._fetch()
            assert self._token is not None
            return self._token

    def invalidate(self) -> None:
        """Forget the cached token (after the API answered 401 with it)."""
        with self._lock:
            self._token = None

    def _fetch(self) -> None:
        last = "no answer"
        for attempt in range(1, self._attempts + 1):
            self._limiter.acquire()
            try:
                resp = self._rest.request(
                    "POST",
                    self._url,
                    headers={
                        "Content-Type": "application/x-www-form-urlencoded",
                        "Accept": "application/json",
                    },
                    post_params=[
                        ("grant_type", "client_credentials"),
                        ("client_id", self._client_id),
                        ("client_secret", self._secret.get_secret_value()),
                    ],
                    _request_timeout=self._timeout,
                )
                status, body = resp.status, resp.read()
            except urllib3.exceptions.HTTPError as exc:
                status, body, last = 0, b"", f"{type(exc).__name__} (network)"
            if status == 200:
                self._accept(body)
                return
            if status in (400, 401, 403):
                raise TokenRefused(
                    f"Aspose Cloud refused the credentials from ASPOSE_CLIENT_ID / "
                    f"ASPOSE_CLIENT_SECRET (HTTP {status}{_oauth_error(body)}) at {self._url}; "
                    "check them in the Aspose Cloud dashboard (Applications)"
                )
            if status:
                last = f"HTTP {status}"
            log.warning(
                "Aspose token request failed (%s), attempt %d/%d", last, attempt, self._attempts
            )
            if attempt < self._attempts:
                time.sleep(self._backoff * 2 ** (attempt - 1))
        raise TokenUnavailable(
            f"cannot get an Aspose Cloud access token from {self._url}: {last} after "
            f"{self._attempts} attempts"
        )

    def _accept(self, body: bytes) -> None:
        try:
            data = json.loads(body)
            token = data["access_token"]
            expires_in = float(data.get("expires_in", 3600))
        except (ValueError, KeyError, TypeError) as exc:
            raise TokenRefused(
                f"the Aspose Cloud token endpoint {self._url} answered without a usable "
                f"access_token ({type(exc).__name__})"
            ) from None
        if not isinstance(token, str) or not token:
            raise TokenRefused(f"the Aspose Cloud token endpoint {self._url} gave an empty token")
        # refresh ahead of expiry: a minute early for hour-long tokens, half-way for short ones
        margin = min(60.0, expires_in / 2)
        self._token = token
        self._refresh_at = self._clock() + expires_in - margin
        self.fetches += 1
        log.debug("Aspose access token obtained, valid %.0f s", expires_in)


def _oauth_error(body: bytes) -> str:
    """The OAuth `error` code from a refusal (e.g. invalid_client), never the whole body."""
    try:
        code = json.loads(body).get("error")
    except (ValueError, AttributeError):
        return ""
    if isinstance(code, str) and code.replace("_", "").isalnum() and len(code) < 40:
        return f", {code}"
    return ""
