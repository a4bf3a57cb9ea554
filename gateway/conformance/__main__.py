"""``python -m gateway.conformance``: see :mod:`gateway.conformance`."""

from __future__ import annotations

from gateway.conformance.runner import main

raise SystemExit(main())
