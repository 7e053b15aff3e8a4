"""The install one-liner: /<module>@<version>/[<dir>/]install.sh, a POSIX sh script that installs a command.

The script picks the build for the machine it runs on, downloads it from its result URL and checks
the SHA-256 prefix against the sum in that URL before anything is made executable. Every value
from the request (module, version, dir, host) is validated here and shell-quoted into the script.
"""

from __future__ import annotations

import re
import shlex
import urllib.parse

from flask import Blueprint, Response, render_template, request

from .. import urls
from ..errors import HTTPProblem
from ..spec import BuildSpec
from ..urls import SCRIPT
from .current import services

bp = Blueprint("install", __name__)

_HOST = re.compile(r"(?:[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?")


@bp.get(f"/<path:prefix>/{SCRIPT}")
def install_script(prefix: str) -> Response:
    """The install script for the command at prefix (<module>@<version>[/<dir>])."""
    module, version, pkgdir = urls.parse_install(prefix)
    s = services()
    version = s.proxy.resolve(module, version)
    commands = s.builder.main_packages(module, version)
    if pkgdir not in commands:
        listed = ", ".join(urls.install_url(module, version, d) for d in commands) or "none"
        raise HTTPProblem(404, f"no command in {module}@{version}{'' if pkgdir == '/' else pkgdir}; "
                               f"the module's install scripts: {listed}")
    # goos/goarch are filled in by the script; any valid target gives the same names on unix.
    spec = BuildSpec(module, version, pkgdir, "linux", "amd64", s.toolchains.latest())
    body = render_template(SCRIPT, values=_script_values(spec))
    resp = Response(body, mimetype="text/plain")
    resp.headers["Cache-Control"] = "no-store"  # "latest" moves; and the script names this host
    return resp


def _script_values(spec: BuildSpec) -> list[tuple[str, str]]:
    """The script's settings as (name, shell-quoted value) pairs; URL parts also percent-encoded."""
    host = request.headers.get("Host", "")
    if not _HOST.fullmatch(host):
        raise HTTPProblem(400, "the Host header is not a host name or address with an optional port")
    path = urls.build_prefix(spec.module, spec.version, spec.dir)
    values = {
        "GOBUILD_BASE": f"{request.scheme}://{host}",
        "GOBUILD_PATH": urllib.parse.quote(path, safe="/@+"),
        "GOBUILD_GOVERSION": spec.goversion,
        "GOBUILD_FILE": urllib.parse.quote(spec.download_filename(), safe="+"),
        "GOBUILD_NAME": spec.exec_name,
        "GOBUILD_WHAT": f"{spec.package}@{spec.version}",
    }
    return [(k, shlex.quote(v)) for k, v in values.items()]
