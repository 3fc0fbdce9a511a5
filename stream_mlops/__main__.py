"""``python -m stream_mlops`` is the same as the ``stream-mlops`` command."""

from stream_mlops.cli import main

raise SystemExit(main())
