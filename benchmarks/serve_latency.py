"""``vqvae serve``'s latency: one client, each request ``--repeats`` times over real HTTP
to the app served by uvicorn on 127.0.0.1, the median in milliseconds (docs/serve.md).

    OMP_NUM_THREADS=1 python benchmarks/serve_latency.py --image RUN --speech RUN --maze RUN \
        [--repeats 20] [--threads 1]

- ``/api/info``: the round trip of a request that does no work, beside the rest;
- ``/api/decode`` of one grid of the image run (an MNIST run: a 7x7 grid -> 28x28);
- ``/api/decode`` of one clip of the speech run (one second of codes, with its decoder:
  the mel decoder and its vocoder or Griffin-Lim);
- ``/api/rollout`` of one maze frame (the frames run's video prior, its own sampler), and
  that step as the page makes it (the rollout, then ``/api/decode`` of the new frame): the
  frames the page can show a second;
- ``/api/sample`` of one grid from the image run's prior;
- 32 concurrent ``/api/decode`` requests of the image run (all must succeed).

Weights do not change the cost: a run trained for a few steps times the same as a trained
one of its preset. The 1-minute load average is printed beside the figures.
"""

from __future__ import annotations

import argparse
import os
import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import torch
import uvicorn

from vqvae.serve import ServedRun, create_app
from vqvae.serve.app import listen


def serve(runs: list[ServedRun]) -> tuple[uvicorn.Server, str]:
    sock = listen()
    server = uvicorn.Server(uvicorn.Config(create_app(runs), log_level="warning"))
    threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    return server, f"http://127.0.0.1:{sock.getsockname()[1]}"


def median_ms(request, repeats: int) -> float:
    request()  # a first call outside the timing: lazy set-up (codebook, caches)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        request()
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def ok(response: httpx.Response) -> httpx.Response:
    if response.status_code != 200:
        raise SystemExit(f"{response.request.url}: {response.status_code} {response.text}")
    return response


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", required=True, help="an image run with a prior (MNIST)")
    parser.add_argument("--speech", required=True, help="a speech run")
    parser.add_argument("--maze", required=True, help="a frames run with a video prior")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    image, speech, maze = (ServedRun(p) for p in (args.image, args.speech, args.maze))
    server, base = serve([image, speech, maze])
    rng = np.random.default_rng(0)
    rows = []
    with httpx.Client(base_url=base, timeout=600) as http:

        def post(path, run, body):
            return ok(http.post(path, params={"run": run.name}, json=body))

        ms = median_ms(lambda: ok(http.get("/api/info")), args.repeats)
        rows.append(("/api/info (the HTTP round trip alone)", ms, ""))

        grid = rng.integers(0, image.num_codes, image.model.code_shape).tolist()
        ms = median_ms(lambda: post("/api/decode", image, {"codes": grid}), args.repeats)
        rows.append((f"/api/decode, one {image.name} grid {image.model.code_shape}", ms, ""))

        per_second = speech.model.config.sample_rate // speech.model.hop
        clip = rng.integers(0, speech.num_codes, per_second).tolist()  # one second of codes
        body = {"codes": clip, "speaker": (speech.model.speakers or [None])[0]}
        ms = median_ms(lambda: post("/api/decode", speech, body), args.repeats)
        rows.append((f"/api/decode, 1 s of {speech.name} speech ({per_second} codes)", ms,
                     f"{1000 / ms:.1f}x real time"))  # fmt: skip

        k = maze.info()["context_frames"]
        context = rng.integers(0, maze.num_codes, (k, *maze.model.code_shape)).tolist()
        action = maze.video_prior.config.action_names[1]
        step = {"context": context, "action": action}
        ms = median_ms(lambda: post("/api/rollout", maze, step), args.repeats)
        rows.append((f"/api/rollout, one {maze.name} frame {maze.model.code_shape}", ms,
                     f"{1000 / ms:.1f} frames/s"))  # fmt: skip

        def page_step():
            codes = post("/api/rollout", maze, step).json()["codes"]
            post("/api/decode", maze, {"codes": codes})

        ms = median_ms(page_step, args.repeats)
        rows.append(("the page's step: rollout + decode of the frame", ms,
                     f"{1000 / ms:.1f} frames/s"))  # fmt: skip

        ms = median_ms(lambda: post("/api/sample", image, {"n": 1, "label": 3}), args.repeats)
        rows.append((f"/api/sample, one {image.name} grid ({image.prior_kind})", ms, ""))

        grids = [rng.integers(0, image.num_codes, image.model.code_shape).tolist()
                 for _ in range(32)]  # fmt: skip
        start = time.perf_counter()
        with ThreadPoolExecutor(32) as pool:
            answers = list(pool.map(
                lambda g: http.post("/api/decode", params={"run": image.name}, json={"codes": g}),
                grids,
            ))  # fmt: skip
        wall = 1000 * (time.perf_counter() - start)
        good = sum(r.status_code == 200 for r in answers)
        rows.append((f"32 concurrent /api/decode ({image.name})", wall, f"{good}/32 succeeded"))
    server.should_exit = True
    print(f"median of {args.repeats}, one client, torch threads {args.threads}, "
          f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")  # fmt: skip
    print("| request | median (ms) | |\n|---|---:|---|")
    for name, ms, note in rows:
        print(f"| {name} | {ms:.1f} | {note} |")


if __name__ == "__main__":
    main()
