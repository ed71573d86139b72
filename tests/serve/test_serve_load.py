"""Load test on localhost: 16 concurrent clients, 1,000 predictions, not one error.

Each client is a thread with its own keep-alive connection, posting a 320×240 JPEG with one real
FER2013 face to a uvicorn server running the really trained checkpoint. The run is bounded in
count (1,000 requests) and in time (it stops issuing requests after ``TIME_CAP`` seconds, and
then fails saying how far it got); latency percentiles are printed (``pytest -s``) and recorded
as test properties (``--junitxml``), never asserted.
"""

from __future__ import annotations

import threading
import time

import httpx
import numpy as np
import pytest

from ferlab.serve import create_app
from tests.serve.serve_helpers import jpeg, live_server, photo

pytestmark = pytest.mark.slow

CLIENTS = 16
REQUESTS = 1000
TIME_CAP = 240.0


def test_sixteen_clients_thousand_requests_no_errors(checkpoint, real_face, record_property):
    data = jpeg(photo(real_face, (320, 240)))
    latencies: list[float] = []
    failures: list[str] = []
    lock = threading.Lock()
    issued = 0

    with live_server(create_app(str(checkpoint), device="cpu")) as url:
        start = time.monotonic()

        def client() -> None:
            nonlocal issued
            with httpx.Client(base_url=url, timeout=60) as http:
                while True:
                    with lock:
                        if issued >= REQUESTS or time.monotonic() - start > TIME_CAP:
                            return
                        issued += 1
                    t0 = time.perf_counter()
                    try:
                        r = http.post("/v1/predict", files={"file": ("f.jpg", data, "image/jpeg")})
                        ok = r.status_code == 200 and len(r.json()["faces"]) == 1
                        problem = None if ok else f"{r.status_code} {r.text[:200]}"
                    except httpx.HTTPError as exc:
                        problem = f"{type(exc).__name__}: {exc}"
                    elapsed = time.perf_counter() - t0
                    with lock:
                        latencies.append(elapsed)
                        if problem:
                            failures.append(problem)

        threads = [threading.Thread(target=client) for _ in range(CLIENTS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.monotonic() - start

    ms = np.array(latencies) * 1000
    p50, p99 = np.percentile(ms, [50, 99])
    report = (
        f"{len(latencies)} requests from {CLIENTS} clients in {wall:.1f} s "
        f"({len(latencies) / wall:.1f} req/s): p50 {p50:.0f} ms, p99 {p99:.0f} ms, "
        f"{len(failures)} errors"
    )
    print(f"\nload test: {report}")
    for name, value in (("requests", len(latencies)), ("p50_ms", p50), ("p99_ms", p99)):
        record_property(name, round(float(value), 1))
    assert failures == [], failures[:5]
    assert len(latencies) == REQUESTS, f"time cap of {TIME_CAP:.0f} s reached: {report}"
