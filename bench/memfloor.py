"""Where a gobuild server's idle memory goes: RSS of fresh interpreters importing more and more of it.

    python bench/memfloor.py

Each row is a new `python -c` that imports the row's modules and everything above it, then prints
its VmRSS, so the increments are what each layer costs on its own (shared libraries it maps
included: RSS counts them). The row of gobuild's own modules ends with everything `gobuild serve`
imports before it answers (create_app's imports): the floor under the idle RSS that
bench/sidebyside.py measures on the running server. The last row is what a queue adds (rq, redis),
which a server without one never imports.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

LAYERS: list[tuple[str, str]] = [
    ("the interpreter alone", ""),
    ("flask (werkzeug, jinja2, click; ssl via http.server)", "flask"),
    ("waitress, htmx-flask", "waitress, htmx_flask"),
    ("cryptography (ed25519, key files)",
     "cryptography.hazmat.primitives.asymmetric.ed25519, cryptography.hazmat.primitives.serialization"),
    ("requests (urllib3, charset_normalizer, idna)", "requests"),
    ("filelock, prometheus_client", "filelock, prometheus_client"),
    ("gobuild's own modules that serve uses", "gobuild.cli, gobuild.serving, gobuild.services, gobuild.logs, "
     "gobuild.web.admin, gobuild.web.admission, gobuild.web.api, gobuild.web.errors, gobuild.web.fastpath, "
     "gobuild.web.feeds, gobuild.web.install, gobuild.web.instrument, gobuild.web.site, gobuild.web.steps, "
     "gobuild.web.tlogviews, gobuild.web.upload, gobuild.web.views"),
    ("with a queue: rq and redis (not imported without \"queue\")", "rq, redis"),
]

MEASURE = "import sys\n{imports}\nprint([l for l in open('/proc/self/status') if l.startswith('VmRSS')][0].split()[1])"


def rss_after(imports: list[str]) -> int:
    """KiB of RSS of a fresh interpreter after importing these modules."""
    code = MEASURE.format(imports="\n".join(f"import {m}" for m in imports))
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    return int(out.stdout.split()[-1])


def main() -> None:
    print("| layer | RSS after it | it adds |")
    print("|---|---|---|")
    imported: list[str] = []
    before = 0
    for name, modules in LAYERS:
        imported += [m.strip() for m in modules.split(",") if m.strip()]
        runs = sorted(rss_after(imported) for _ in range(3))
        kib = runs[1]  # median of 3
        added = f"+{(kib - before) / 1024:.1f} MiB" if before else ""
        print(f"| {name} | {kib / 1024:.1f} MiB | {added} |")
        before = kib


if __name__ == "__main__":
    main()
