"""``vqvae serve``: a local web page over trained runs, to see and edit their codes, listen,
convert and play the maze (docs/serve.md). Binds 127.0.0.1 unless ``--host`` says otherwise."""

from __future__ import annotations

import argparse
import threading
import webbrowser
from typing import Any

from vqvae.console import say
from vqvae.errors import RunError

LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


def add_parser(sub: Any) -> None:
    p = sub.add_parser("serve", help="a local web page to explore trained runs")
    p.add_argument("runs", nargs="+", metavar="RUN", help="run folders (each is ?run=NAME)")
    p.add_argument(
        "--host", default="127.0.0.1", help="the address to listen on (default: 127.0.0.1)"
    )
    p.add_argument("--port", type=int, default=8000, help="default: 8000 (0: any free port)")
    p.add_argument("--open", action="store_true", help="open the page in a web browser")
    p.add_argument("--data-root", help="where named data sets live (default: $VQVAE_DATA)")
    p.add_argument(
        "--max-upload-mb", type=float, default=20.0, help="larger requests get 413 (default: 20)"
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        import uvicorn

        from vqvae.serve.app import create_app, listen
    except ImportError as e:
        raise RunError(
            f"vqvae serve needs the serve extra: pip install 'vqvae[serve]' ({e})"
        ) from None
    from vqvae.serve import Limits, ServedRun

    if not 0 <= args.port <= 65535:
        raise RunError(f"--port {args.port}: expected 0..65535")
    if args.max_upload_mb <= 0:
        raise RunError(f"--max-upload-mb {args.max_upload_mb}: expected a number > 0")
    limits = Limits(upload_bytes=int(args.max_upload_mb * 2**20))
    runs = [ServedRun(path, data_root=args.data_root, limits=limits) for path in args.runs]
    app = create_app(runs, limits)
    listener = listen(args.host, args.port)
    port = listener.getsockname()[1]
    if args.host not in LOCAL_HOSTS:
        say(f"vqvae serve: warning: listening on {args.host}: anyone who can reach this "
            f"machine on port {port} can use these runs")  # fmt: skip
    shown = f"[{args.host}]" if ":" in args.host else args.host
    url = f"http://{shown}:{port}/"
    names = ", ".join(f"{r.name} ({r.modality})" for r in runs)
    say(f"vqvae serve: {names} at {url} (Ctrl-C stops)")
    for served in runs:  # the codebook of K = 4,096 codes takes seconds: drawn meanwhile
        threading.Thread(target=served.warm, daemon=True).start()
    if args.open:
        threading.Timer(1.0, webbrowser.open, [url]).start()
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
    server.run(sockets=[listener])
    return 0
