"""Lets the service run as ``python -m matrixrtc_auth``."""

from matrixrtc_auth.cli import main

raise SystemExit(main())
