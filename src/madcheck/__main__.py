"""Allow ``python -m madcheck``."""

from madcheck.cli import main

raise SystemExit(main())
