"""A loopback stand-in for Aspose.OCR Cloud (REST API v5), for driving the real SDK in tests.

It speaks the same HTTP protocol as the service, with responses shaped like recorded ones:

- POST /connect/token (form: grant_type=client_credentials, client_id, client_secret)
  -> {"access_token", "expires_in", "token_type": "Bearer"}; wrong credentials -> 400 invalid_client
- POST /v5.0/ocr/RecognizeImage | RecognizePdf (JSON {"image": base64, "settings": {...}})
  -> 200 text/plain task id; no or stale bearer token -> 401
- GET  /v5.0/ocr/RecognizeImage | RecognizePdf ?id=  -> OCRResponse JSON
  {"id", "taskStatus", "responseStatusCode", "results": [{"type", "data": base64}], "error"}
- DELETE the same ?id= -> cancels the task
- GET  /v5.0/ocr/Utilities/GetTaskStatus ?id= -> OCRResponse without results

The recognised text is scripted: `page` holds blocks of lines, each line (text, box, confidence)
with the box as fractions of the received image (0..1), so a test can check where boxes land in
page pixels whatever scaling the engine did. Fault modes: `fail()` queues error answers or delays
per endpoint, `pending_polls` keeps tasks pending, `result_mode` sends malformed results,
`revoke_tokens()` makes issued tokens stale.
"""

from __future__ import annotations

import base64
import io
import json
import threading
import time
import uuid
from dataclasses import dataclass, field
from html import escape
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from PIL import Image

TOKEN = "/connect/token"
IMAGE = "/v5.0/ocr/RecognizeImage"
PDF = "/v5.0/ocr/RecognizePdf"
STATUS = "/v5.0/ocr/Utilities/GetTaskStatus"

Line = tuple[str, tuple[float, float, float, float], float | None]

DEFAULT_PAGE: list[list[Line]] = [
    [
        ("Dear Sir,", (0.10, 0.08, 0.40, 0.12), 0.93),
        ("I write to you from Lyon", (0.10, 0.14, 0.80, 0.18), 0.81),
    ],
    [("Yours faithfully", (0.50, 0.80, 0.90, 0.85), None)],
]


@dataclass
class Fault:
    status: int | None = None  # None: answer normally (after `delay`)
    delay: float = 0.0
    headers: dict = field(default_factory=dict)
    body: bytes = b""


@dataclass
class Task:
    id: str
    kind: str  # "image" | "pdf"
    settings: dict
    sizes: list[tuple[int, int]]
    polls: int = 0
    cancelled: bool = False


@dataclass
class Request:
    at: float
    method: str
    path: str
    query: dict
    bearer: str | None
    body: dict | None


class AsposeStub:
    def __init__(self, client_id: str = "stub-client", client_secret: str = "stub-secret"):
        self.client_id = client_id
        self.client_secret = client_secret
        self.token_ttl = 3600
        self.token_status = 400  # answer to wrong credentials (the service says 400 invalid_client)
        self.pending_polls = 0
        self.result_mode = "hocr"
        self.page: list[list[Line]] = DEFAULT_PAGE
        self.hocr_text: str | None = None  # send this hOCR verbatim instead of one made from `page`
        self.tasks: dict[str, Task] = {}
        self.requests: list[Request] = []
        self.tokens: dict[str, float] = {}  # token -> expiry (monotonic)
        self.refused: list[int] = []  # statuses of 401 answers given
        self._faults: dict[tuple[str, str], list[Fault]] = {}
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> AsposeStub:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    # --- knobs ---

    def fail(self, method: str, path: str, status: int | None, times: int = 1, **kw) -> None:
        """Answer the next `times` requests to (method, path) with `status` (or delay them)."""
        with self._lock:
            self._faults.setdefault((method, path), []).extend(
                Fault(status, **kw) for _ in range(times)
            )

    def revoke_tokens(self) -> None:
        with self._lock:
            self.tokens.clear()

    def calls(self, method: str, path: str) -> list[Request]:
        return [r for r in self.requests if r.method == method and r.path == path]

    # --- behaviour ---

    def _fault(self, method: str, path: str) -> Fault | None:
        with self._lock:
            queue = self._faults.get((method, path))
            return queue.pop(0) if queue else None

    def token(self, form: dict) -> tuple[int, dict, bytes]:
        ok = (
            form.get("grant_type") == ["client_credentials"]
            and form.get("client_id") == [self.client_id]
            and form.get("client_secret") == [self.client_secret]
        )
        if not ok:
            body = {"error": "invalid_client"} if self.token_status == 400 else {}
            return self.token_status, {"Content-Type": "application/json"}, _json(body)
        token = "tok-" + uuid.uuid4().hex
        with self._lock:
            self.tokens[token] = time.monotonic() + self.token_ttl
        body = {"access_token": token, "expires_in": self.token_ttl, "token_type": "Bearer"}
        return 200, {"Content-Type": "application/json; charset=utf-8"}, _json(body)

    def authorized(self, bearer: str | None) -> bool:
        with self._lock:
            expiry = self.tokens.get(bearer or "")
        return expiry is not None and time.monotonic() < expiry

    def submit(self, kind: str, body: dict) -> tuple[int, dict, bytes]:
        try:
            data = base64.b64decode(body["image"], validate=True)
            sizes = _pdf_sizes(data) if kind == "pdf" else [Image.open(io.BytesIO(data)).size]
        except Exception:
            problem = {"title": "Bad Request", "status": 400, "detail": "image is not readable"}
            return 400, {"Content-Type": "application/problem+json"}, _json(problem)
        task = Task(str(uuid.uuid4()), kind, body.get("settings") or {}, sizes)
        with self._lock:
            self.tasks[task.id] = task
        return 200, {"Content-Type": "text/plain; charset=utf-8"}, task.id.encode()

    def result(self, task_id: str, with_results: bool = True) -> tuple[int, dict, bytes]:
        with self._lock:
            task = self.tasks.get(task_id)
            if task is not None:
                task.polls += 1
        answer: dict = {"id": task_id, "results": None, "error": None}
        if task is None or task.cancelled:
            answer.update(taskStatus="NotExist", responseStatusCode="TaskNotFound")
        elif task.polls <= self.pending_polls:
            state = "Pending" if task.polls == 1 else "Processing"
            answer.update(taskStatus=state, responseStatusCode="NotReady")
        elif self.result_mode == "task-error":
            answer.update(
                taskStatus="Error",
                responseStatusCode="Error",
                error={"messages": ["Image could not be recognised"], "warnings": []},
            )
        else:
            answer.update(taskStatus="Completed", responseStatusCode="Ok")
            if with_results:
                answer["results"] = self._results(task)
        if self.result_mode == "garbage-json" and answer.get("taskStatus") == "Completed":
            return 200, {"Content-Type": "application/json"}, b'{"id": "x", "taskStatus": '
        if self.result_mode == "unknown-status" and answer.get("taskStatus") == "Completed":
            answer["taskStatus"] = "Exploded"
        return 200, {"Content-Type": "application/json; charset=utf-8"}, _json(answer)

    def _results(self, task: Task) -> list[dict] | None:
        mode = self.result_mode
        if mode == "no-results":
            return []
        if mode == "bad-base64":
            return [{"type": "Hocr", "data": "%%% not base64 %%%"}]
        if mode == "not-hocr":
            data = b"All men live enveloped in whale-lines."
        elif self.hocr_text is not None:
            data = self.hocr_text.encode()
        else:
            data = hocr(self.page, task.sizes).encode()
        return [{"type": "Hocr", "data": base64.b64encode(data).decode()}]

    def cancel(self, task_id: str) -> tuple[int, dict, bytes]:
        with self._lock:
            task = self.tasks.get(task_id)
            if task is not None:
                task.cancelled = True
        return 200, {}, b""


def hocr(page: list[list[Line]], sizes: list[tuple[int, int]]) -> str:
    """hOCR as an OCR service writes it: page > carea > par > line > word, bbox and x_wconf."""
    out = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        '<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.0 Transitional//EN"'
        ' "http://www.w3.org/TR/xhtml1/DTD/xhtml1-transitional.dtd">',
        '<html xmlns="http://www.w3.org/1999/xhtml" xml:lang="en" lang="en"><head>',
        '<meta http-equiv="Content-Type" content="text/html;charset=utf-8"/>',
        "<meta name='ocr-system' content='stub'/>",
        "<meta name='ocr-capabilities' content='ocr_page ocr_carea ocr_par ocr_line ocrx_word'/>",
        "</head><body>",
    ]
    for p, (w, h) in enumerate(sizes, 1):
        out.append(f"<div class='ocr_page' id='page_{p}' title='image \"page\"; bbox 0 0 {w} {h}'>")
        for b, block in enumerate(page, 1):
            box = _px(_union([ln[1] for ln in block]), w, h)
            out.append(f"<div class='ocr_carea' id='block_{p}_{b}' title='bbox {box}'>")
            out.append(f"<p class='ocr_par' id='par_{p}_{b}' title='bbox {box}'>")
            for i, (text, (x0, y0, x1, y1), conf) in enumerate(block, 1):
                lbox = _px((x0, y0, x1, y1), w, h)
                out.append(f"<span class='ocr_line' id='line_{p}_{b}_{i}' title='bbox {lbox}'>")
                words = text.split()
                step = (x1 - x0) / max(1, len(words))
                for j, word in enumerate(words):
                    wbox = _px((x0 + j * step, y0, x0 + (j + 1) * step, y1), w, h)
                    wconf = f"; x_wconf {round(conf * 100)}" if conf is not None else ""
                    out.append(
                        f"<span class='ocrx_word' title='bbox {wbox}{wconf}'>{escape(word)}</span> "
                    )
                out.append("</span>")
            out.append("</p></div>")
        out.append("</div>")
    out.append("</body></html>")
    return "\n".join(out)


def _px(box: tuple[float, ...], w: int, h: int) -> str:
    return f"{round(box[0] * w)} {round(box[1] * h)} {round(box[2] * w)} {round(box[3] * h)}"


def _union(boxes: list[tuple[float, ...]]) -> tuple[float, ...]:
    return (
        min(b[0] for b in boxes),
        min(b[1] for b in boxes),
        max(b[2] for b in boxes),
        max(b[3] for b in boxes),
    )


def _pdf_sizes(data: bytes) -> list[tuple[int, int]]:
    import pypdfium2

    doc = pypdfium2.PdfDocument(data)
    try:
        return [tuple(round(v) for v in doc[i].get_size()) for i in range(len(doc))]
    finally:
        doc.close()


def _json(obj: object) -> bytes:
    return json.dumps(obj).encode()


def _handler(stub: AsposeStub) -> type[BaseHTTPRequestHandler]:
    routes = {IMAGE: "image", PDF: "pdf"}

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:  # keep test output quiet
            pass

        def _serve(self) -> None:
            url = urlsplit(self.path)
            query = parse_qs(url.query)
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            auth = self.headers.get("Authorization") or ""
            bearer = auth[7:] if auth.startswith("Bearer ") else None
            body = None
            if raw and "json" in (self.headers.get("Content-Type") or ""):
                body = json.loads(raw)
            stub.requests.append(
                Request(time.monotonic(), self.command, url.path, query, bearer, body)
            )
            fault = stub._fault(self.command, url.path)
            if fault is not None:
                time.sleep(fault.delay)
                if fault.status is not None:
                    return self._send(fault.status, fault.headers, fault.body)
            task_id = (query.get("id") or [""])[0]
            if url.path == TOKEN and self.command == "POST":
                return self._send(*stub.token(parse_qs(raw.decode())))
            if url.path not in (IMAGE, PDF, STATUS):
                return self._send(404, {}, b"")
            if not stub.authorized(bearer):
                stub.refused.append(401)
                return self._send(401, {"WWW-Authenticate": 'Bearer error="invalid_token"'}, b"")
            if url.path == STATUS and self.command == "GET":
                return self._send(*stub.result(task_id, with_results=False))
            if self.command == "POST":
                return self._send(*stub.submit(routes[url.path], body or {}))
            if self.command == "GET":
                return self._send(*stub.result(task_id))
            if self.command == "DELETE":
                return self._send(*stub.cancel(task_id))
            return self._send(405, {}, b"")

        def _send(self, status: int, headers: dict, body: bytes) -> None:
            try:
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (a timeout test)

        do_GET = do_POST = do_DELETE = _serve

    return Handler


if __name__ == "__main__":  # python -m tests.aspose_stub: serve until Ctrl-C, for trying the CLI
    import contextlib
    import os

    with AsposeStub(
        os.environ.get("ASPOSE_CLIENT_ID", "stub-client"),
        os.environ.get("ASPOSE_CLIENT_SECRET", "stub-secret"),
    ) as server:
        print(f"MANUSCRIBE_ASPOSE_BASE_URL={server.base_url}", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            threading.Event().wait()
