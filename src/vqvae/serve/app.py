"""The ASGI app of ``vqvae serve``: the JSON API over ``ServedRun`` and the page in
``static/`` (docs/serve.md is the contract; ``/openapi.json`` lists it).

Every error is JSON ``{"error": "one line"}`` with a 4xx status (a 500 only for a bug, also
one line, its traceback in the server's log). Request bodies over the upload limit get 413
before they are read in full. Only the page's own files are served, looked up by name in a
table made at start-up, so no URL reaches another file. Routes are plain functions, which
FastAPI runs on its thread pool: requests are served concurrently (``ServedRun`` shares
nothing mutable between them).
"""

# no `from __future__ import annotations`: FastAPI reads the routes' annotations, and the
# ``Run`` alias is local to create_app
import json
import logging
import socket
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, FastAPI, File, Query, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException

from vqvae import __version__
from vqvae.errors import RunError, VQVAEError
from vqvae.serve.errors import BAD_INPUT, NOT_FOUND, TOO_LARGE, Refused
from vqvae.serve.served import Limits, ServedRun

STATIC = Path(__file__).parent / "static"
TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
         ".css": "text/css; charset=utf-8", ".svg": "image/svg+xml"}  # fmt: skip
log = logging.getLogger("vqvae.serve")


Upload = Annotated[UploadFile, File(description="the file, as multipart form data")]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a misspelt field is refused, not ignored


class DecodeRequest(_Strict):
    codes: Any = Field(description="one grid of the run's shape, or (N, *shape) for images")
    speaker: str | None = Field(None, description="speech: who speaks (a name of /api/info)")
    seed: int = Field(0, description="speech: the decoder's sampling seed (vqvae decode --seed)")


class SampleRequest(_Strict):
    n: int = 1
    label: int | str | None = None
    speaker: str | None = None
    temperature: float = 1.0
    steps: int | None = Field(None, description="for a prior whose sample takes steps; else 422")
    seed: int = 0


class InpaintRequest(_Strict):
    codes: Any
    mask: Any = Field(description="the codes' shape: 1 where codes are redrawn, 0 where kept")
    label: int | str | None = None
    seed: int = 0


class RolloutRequest(_Strict):
    context: Any = Field(description="(F, h, w) codes of the frames so far, F >= the prior's k")
    action: str
    seed: int = 0


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def _line(text: str) -> str:
    text = text.strip()
    return text.splitlines()[0] if text else "bad request"


def _validation_line(e: RequestValidationError) -> str:
    """FastAPI's list of problems -> the first as one line: ``field: what is wrong``."""
    first = e.errors()[0] if e.errors() else {}
    where = ".".join(str(p) for p in first.get("loc", ()) if p not in ("body", "query"))
    return _line(f"{where}: {first.get('msg', 'invalid')}" if where else first.get("msg", ""))


class BodyLimit:
    """ASGI middleware: a request body over ``limit`` bytes gets 413, by its Content-Length
    before any of it is read, or as soon as a body without one passes the limit."""

    def __init__(self, app: Any, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope.get("headers", [])).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.limit:
            await self._refuse(send)
            return
        if length is None:  # a body without a length (chunked): read it, up to the limit
            body = bytearray()
            while True:
                message = await receive()
                if message["type"] != "http.request":
                    break
                body += message.get("body", b"")
                if len(body) > self.limit:
                    await self._refuse(send)
                    return
                if not message.get("more_body", False):
                    break
            replayed = False

            async def replay() -> dict:
                nonlocal replayed
                if replayed:
                    return await receive()
                replayed = True
                return {"type": "http.request", "body": bytes(body), "more_body": False}

            await self.app(scope, replay, send)
            return
        await self.app(scope, receive, send)

    async def _refuse(self, send: Any) -> None:
        mb = self.limit / 2**20
        body = json.dumps({"error": f"the request is larger than the {mb:g} MB limit"}).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
        await send({"type": "http.response.start", "status": TOO_LARGE, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def create_app(runs: list[ServedRun], limits: Limits | None = None) -> FastAPI:
    """The app over ``runs`` (the first is the default of ``?run=``)."""
    limits = limits or Limits()
    if not runs:
        raise ValueError("expected at least one run to serve")
    by_name = {r.name: r for r in runs}
    if len(by_name) != len(runs):
        raise VQVAEError("two runs share a folder name; serve them from differently named folders")
    static = {p.name: p for p in STATIC.iterdir() if p.is_file() and p.suffix in TYPES}
    app = FastAPI(
        title="vqvae serve",
        version=__version__,
        description="See and edit a trained run's codes (docs/serve.md).",
        docs_url=None,  # FastAPI's docs pages load their scripts from a CDN: none here
        redoc_url=None,
    )

    @app.exception_handler(Refused)
    def refused(request: Request, e: Refused) -> JSONResponse:
        return _error(e.status, _line(str(e)))

    @app.exception_handler(ValueError)  # VQVAEError and the library's own shape checks
    def bad_value(request: Request, e: ValueError) -> JSONResponse:
        return _error(BAD_INPUT, _line(str(e)))

    @app.exception_handler(RequestValidationError)
    def invalid(request: Request, e: RequestValidationError) -> JSONResponse:
        return _error(BAD_INPUT, _validation_line(e))

    @app.exception_handler(HTTPException)
    def http_error(request: Request, e: HTTPException) -> JSONResponse:
        if e.status_code == NOT_FOUND:
            return _error(NOT_FOUND, "not found: this server has the page and /api/... only")
        return _error(e.status_code, _line(str(e.detail)))

    @app.exception_handler(Exception)
    def bug(request: Request, e: Exception) -> JSONResponse:
        log.error("error in %s %s", request.method, request.url.path, exc_info=e)
        return _error(500, f"internal error: {_line(str(e)) or type(e).__name__}")

    def pick(
        run: Annotated[str | None, Query(description="the run's name; default: the first")] = None,
    ) -> ServedRun:
        if run is None:
            return runs[0]
        if run not in by_name:
            raise Refused(f"unknown run {run!r}; this server has {', '.join(by_name)}", NOT_FOUND)
        return by_name[run]

    Run = Annotated[ServedRun, Depends(pick)]

    def png(data: bytes) -> Response:
        return Response(data, media_type="image/png")

    # -- the page ------------------------------------------------------------------------------
    @app.get("/", include_in_schema=False)
    def index() -> Response:
        return Response(static["index.html"].read_bytes(), media_type=TYPES[".html"])

    @app.get("/static/{name}", include_in_schema=False)
    def static_file(name: str) -> Response:
        path = static.get(name)
        if path is None:
            raise Refused(f"no page file {name!r}", NOT_FOUND)
        return Response(path.read_bytes(), media_type=TYPES[path.suffix])

    # -- the API ------------------------------------------------------------------------------
    @app.get("/api/runs")
    def list_runs() -> dict:
        """The runs this server has, by name (``?run=NAME``)."""
        return {"runs": list(by_name)}

    @app.get("/api/info")
    def info(served: Run) -> dict:
        """What the run is: modality, code shape, K, labels, speakers, actions, priors."""
        return served.info()

    @app.get("/api/examples")
    def examples(served: Run) -> dict:
        """The test split of the run's own data, which the page picks from (empty, with a
        note, where that data cannot be read on this machine)."""
        items, note = served.examples()
        return {"count": len(items), "items": [vars(x) for x in items[:1000]], "note": note}

    @app.get("/api/examples/{index}")
    def example(index: int, served: Run) -> Any:
        """Test item ``index``: a PNG (images), a WAV (speech), or for a frames run
        ``{"context": (F, h, w)}``, the codes of its first frames."""
        found = served.example(index)
        if isinstance(found, dict):
            return found
        data, media_type = found
        return Response(data, media_type=media_type)

    @app.post("/api/encode")
    def encode(file: Upload, served: Run) -> dict:
        """An image (any format Pillow reads) or a clip (WAV, FLAC, OGG) -> its codes."""
        codes = served.encode_upload(file.file.read(), file.filename)
        return {"codes": codes.tolist(), "shape": list(codes.shape)}

    @app.post("/api/decode", responses={200: {"content": {"image/png": {}, "audio/wav": {}}}})
    def decode(body: DecodeRequest, served: Run) -> Response:
        """Codes -> a PNG (images) or a WAV (speech): what ``vqvae decode`` writes."""
        codes = served.codes(body.codes, batch=True)
        if served.audio:
            return Response(
                served.decode_wav(codes, body.speaker, body.seed), media_type="audio/wav"
            )
        served.speaker(body.speaker)
        return png(served.decode_png(codes))

    @app.post("/api/sample")
    def sample(body: SampleRequest, served: Run) -> dict:
        """``n`` code grids from the run's prior (409 without one)."""
        codes = served.sample(
            body.n, body.label, body.speaker, body.temperature, body.steps, body.seed
        )
        return {"codes": codes}

    @app.post("/api/inpaint")
    def inpaint(body: InpaintRequest, served: Run) -> dict:
        """Redraw the masked codes with a prior that can (409 with one that cannot)."""
        codes = served.codes(body.codes)
        return {"codes": served.inpaint(codes, body.mask, body.label, body.seed)}

    @app.post("/api/rollout")
    def rollout(body: RolloutRequest, served: Run) -> dict:
        """The next frame's codes (h, w) after ``context`` under ``action`` (a frames run)."""
        return {"codes": served.rollout(body.context, body.action, body.seed)}

    @app.get("/api/codebook", responses={200: {"content": {"image/png": {}}}})
    def codebook(served: Run) -> Response:
        """Every code decoded alone (images), or its mean log-mel frame (speech)."""
        return png(served.codebook_png)

    @app.get("/api/neighbours")
    def neighbours(code: int, served: Run, n: int = 16) -> dict:
        """``code`` and the codes nearest to it in the codebook, nearest first."""
        return {"codes": served.neighbours(code, n)}

    @app.post("/api/spectrogram", responses={200: {"content": {"image/png": {}}}})
    def spectrogram(file: Upload, served: Run) -> Response:
        """A clip's log-mel spectrogram at the run's settings (speech runs)."""
        return png(served.spectrogram_png(file.file.read(), file.filename))

    app.add_middleware(BodyLimit, limit=limits.upload_bytes)
    return app


def listen(host: str = "127.0.0.1", port: int = 0) -> socket.socket:
    """A listening socket for uvicorn (``sockets=[...]``), bound here so that a port in use
    is one line, not a log. TCP_NODELAY, which accepted connections inherit: without it a
    response's body waits for the ACK of its headers, 40 ms on a kept-alive connection
    (measured: /api/info took 44 ms instead of 1)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        sock.bind((host, port))
    except OSError as e:
        sock.close()
        raise RunError(
            f"cannot listen on {host}:{port} ({e.strerror}); pick another --port"
        ) from None
    sock.listen(128)
    sock.set_inheritable(True)
    return sock
