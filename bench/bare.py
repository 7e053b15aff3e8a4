"""A bare waitress app (no Flask) answering fixed bytes per path: waitress' own ceiling, for comparison.

    python bench/bare.py PORT ANSWERS.json

ANSWERS.json maps a path to [status, [[header, value], ...], body as latin-1 text]; it is served
with the same waitress options as gobuild (gobuild.serving.waitress_options).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # this checkout's gobuild, not an installed one


def make_app(answers: dict[str, tuple[str, list[tuple[str, str]], bytes]]) -> Callable[..., Iterable[bytes]]:
    """The WSGI app: one dict lookup per request, 404 for anything else."""
    missing = ("404 Not Found", [("Content-Type", "text/plain"), ("Content-Length", "10")], b"not found\n")

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        status, headers, body = answers.get(environ["PATH_INFO"], missing)
        start_response(status, list(headers))
        return [body]

    return app


def main() -> None:
    import waitress

    from gobuild.serving import waitress_options

    port, path = int(sys.argv[1]), sys.argv[2]
    with open(path) as f:
        raw = json.load(f)
    answers = {p: (s, [(k, v) for k, v in hs], b.encode("latin-1")) for p, (s, hs, b) in raw.items()}
    waitress.serve(make_app(answers), host="127.0.0.1", port=port, **waitress_options(32))


if __name__ == "__main__":
    main()
