"""`python -m gobuild`: the gobuild command."""

from .cli import main

if __name__ == "__main__":  # not when a test imports every module
    raise SystemExit(main())
