"""``python -m botgw``: the ``botgw`` command."""

from botgw.cli import main

raise SystemExit(main())
