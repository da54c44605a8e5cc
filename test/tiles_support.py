"""Shared pieces of the tile tests: a synthetic orthophoto and a loopback tile server."""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Callable

import cv2
import numpy as np
import torch

from cvfm_ros.geometry import MetricGrid
from cvfm_ros.maps.geodesy import Datum

# Seattle: Web Mercator's scale factor is 1/cos(47.6 deg) = 1.48, far from metric.
DATUM = Datum(47.6, -122.3, 30.0)
# Marker discs: (u, v) pixel centres in the orthophoto and their colours (RGB).
MARKERS = [((260, 300), (255, 0, 0)), ((420, 380), (0, 255, 0)), ((350, 470), (0, 0, 255)),
           ((480, 250), (255, 255, 0))]


def orthophoto(size: int = 800, cell_m: float = 0.15, cx: float = 250.0, cy: float = -120.0,
               seed: int = 0) -> tuple[np.ndarray, MetricGrid]:
    """A textured north-up RGB orthophoto (size x size) with coloured marker discs, and its grid."""
    rng = np.random.default_rng(seed)
    noise = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
    # Texture at a scale that survives resampling to ~0.2 m/px; kept mid-grey so markers stand out.
    img = cv2.GaussianBlur(noise, (0, 0), 3.0)
    img = cv2.normalize(img, None, 40, 160, cv2.NORM_MINMAX)
    for (u, v), colour in MARKERS:
        cv2.circle(img, (u, v), 14, colour, -1, lineType=cv2.LINE_AA)
    return img, MetricGrid(size, size, cell_m, cx, cy)


def resample_direct(img: np.ndarray, grid: MetricGrid, cx: float, cy: float, size: int, mpp: float) -> np.ndarray:
    """The orthophoto resampled straight onto a patch grid (no tiles): the reference for patch reads."""
    patch = MetricGrid(size, size, mpp, cx, cy)
    xy = patch.cell_centres(torch.float64)
    uv = grid.metric_to_pixel(xy).numpy().astype(np.float32)
    return cv2.remap(img, uv[..., 0], uv[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)


def marker_centroids(img: np.ndarray) -> dict[tuple[int, int, int], np.ndarray]:
    """Centroid (u, v) of each marker colour found in an RGB image."""
    out = {}
    for _, colour in MARKERS:
        dist = np.abs(img.astype(np.int32) - np.array(colour)).sum(-1)
        ys, xs = np.nonzero(dist < 120)
        if len(xs) > 12:
            out[colour] = np.array([xs.mean(), ys.mean()])
    return out


@dataclass
class TileServer:
    """A loopback HTTP tile server over a folder of `{z}/{x}/{y}.png` with scripted misbehaviour.

    `behaviour[path]` is a callable(handler, count) run instead of the normal reply, where count is
    how many times that path was requested (1 for the first).
    """

    root: Path
    behaviour: dict[str, Callable] = field(default_factory=dict)
    requests: list[str] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)
    httpd: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self.httpd is not None
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}/{{z}}/{{x}}/{{y}}.png"

    def count(self, path: str) -> int:
        return sum(1 for p in self.requests if p == path)


def start_server(root: Path) -> TileServer:
    server = TileServer(root)

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):  # keep test output quiet
            pass

        def do_GET(self):  # noqa: N802 (http.server's naming)
            path = self.path.split("?")[0]
            server.requests.append(path)
            action = server.behaviour.get(path)
            if action is not None:
                action(self, server.count(path))
                return
            send_file(self, server.root / path.lstrip("/"))

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    server.httpd = httpd
    threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    return server


def stop_server(server: TileServer) -> None:
    server.release.set()
    assert server.httpd is not None
    server.httpd.shutdown()
    server.httpd.server_close()


def send_file(handler: BaseHTTPRequestHandler, path: Path) -> None:
    if not path.is_file():
        send(handler, 404, b"not found", "text/plain")
        return
    send(handler, 200, path.read_bytes(), "image/png")


def send(handler: BaseHTTPRequestHandler, code: int, body: bytes, ctype: str = "image/png",
         length: bool = True) -> None:
    handler.send_response(code)
    handler.send_header("Content-Type", ctype)
    if length:
        handler.send_header("Content-Length", str(len(body)))
    else:
        handler.send_header("Connection", "close")
    handler.end_headers()
    handler.wfile.write(body)
    if not length:
        handler.close_connection = True


def trickle(server: TileServer, interval_s: float = 0.05, limit_s: float = 10.0) -> Callable:
    """A 200 reply that declares 1 MB and sends one byte every `interval_s` (inside any read
    timeout), until the client hangs up, the test releases it, or `limit_s` passes."""
    def action(handler, count):
        handler.send_response(200)
        handler.send_header("Content-Type", "image/png")
        handler.send_header("Content-Length", str(1 << 20))
        handler.end_headers()
        started = time.monotonic()
        try:
            while not server.release.wait(interval_s) and time.monotonic() - started < limit_s:
                handler.wfile.write(b"x")
                handler.wfile.flush()
        except OSError:  # the client gave up: what the test wants
            pass
        handler.close_connection = True
    return action


def stall(server: TileServer, limit_s: float = 5.0) -> Callable:
    """A reply that never comes (until the test releases it, at most `limit_s`)."""
    def action(handler, count):
        server.release.wait(limit_s)
    return action
