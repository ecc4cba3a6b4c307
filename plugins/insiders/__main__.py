"""`python -m insiders ...`: the same as the `insiders` command."""

from .cli import main

raise SystemExit(main())
