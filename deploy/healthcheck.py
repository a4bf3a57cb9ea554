#!/usr/bin/env python3
"""``botgw-healthcheck [URL ...]``: exit 0 when one of the URLs answers 200, else 1.

The image has no curl or wget; this is its ``HEALTHCHECK`` and the compose file's
(``botgw-healthcheck http://127.0.0.1:8080/readyz``). Without URLs it asks
``BOTGW_HEALTHCHECK_URL`` if that is set, else ``/healthz`` on each port a process
of the image listens on: REST (``BOTGW_REST_PORT``, 8080), the gateway
(``BOTGW_GATEWAY_PORT``, 8081) and the webhook dispatcher (8082, the ``--port``
the deploy files give it). A container runs one of them, so the one that answers
is the container's own; the others refuse at once.
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request

TIMEOUT_S = 3.0
DISPATCHER_PORT = 8082


def default_urls(environ: dict[str, str]) -> list[str]:
    configured = environ.get("BOTGW_HEALTHCHECK_URL", "").strip()
    if configured:
        return [configured]
    ports = (
        environ.get("BOTGW_REST_PORT") or "8080",
        environ.get("BOTGW_GATEWAY_PORT") or "8081",
        str(DISPATCHER_PORT),
    )
    return [f"http://127.0.0.1:{port}/healthz" for port in ports]


def answers_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_S) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError, ValueError):
        # refused, timed out, or an HTTP error status (a 503 while draining or unready)
        return False


def main(argv: list[str]) -> int:
    urls = argv or default_urls(dict(os.environ))
    if any(answers_ok(url) for url in urls):
        return 0
    print(f"botgw-healthcheck: no 200 from {' '.join(urls)}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
