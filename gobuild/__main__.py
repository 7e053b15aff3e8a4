"""`python -m gobuild`: the gobuild command."""

from .cli import main

raise SystemExit(main())
