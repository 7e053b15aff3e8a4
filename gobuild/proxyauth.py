"""Credentials for a private module proxy: one netrc file, used by our client and by the go command.

The go command reads the file named by NETRC (GOAUTH's default, "netrc") and, like it, we send the
credentials only over https. The file's path goes into the go commands' environment; its contents
never reach a page, a log or a build log.
"""

from __future__ import annotations

import netrc
import os
from urllib.parse import urlsplit

import requests
from requests.auth import AuthBase, HTTPBasicAuth

from .config import ConfigError

# Settings of the server's own environment that private modules need, handed to every go command
# (which otherwise inherits nothing from the server) unless the config's environment sets them.
PASSED_THROUGH = ("GOPRIVATE", "GONOSUMDB", "GONOSUMCHECK", "GOINSECURE")


class NetrcAuth(AuthBase):
    """Basic auth from a netrc file for the hosts it names, https only."""

    def __init__(self, path: str) -> None:
        try:
            self._netrc = netrc.netrc(path)
        except (OSError, netrc.NetrcParseError) as e:
            # The parse error quotes the file's line: name the file, never its contents.
            reason = e.strerror if isinstance(e, OSError) else f"line {e.lineno}: not valid netrc syntax"
            raise ConfigError(f"config: goproxy_auth_file {path}: {reason}") from None
        self.path = path

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        parts = urlsplit(r.url or "")
        if parts.scheme != "https":
            return r
        # The go command matches host:port (a proxy on another port); the netrc convention, the host.
        found = self._netrc.authenticators(parts.netloc.rpartition("@")[2]) \
            or self._netrc.authenticators(parts.hostname or "")
        if found is None:
            return r
        login, _, password = found
        basic: requests.PreparedRequest = HTTPBasicAuth(login, password or "")(r)
        return basic

    def __repr__(self) -> str:  # never the password, should the object end up in a log line
        return f"NetrcAuth({self.path!r})"


def go_environment(auth_file: str, configured: tuple[str, ...]) -> tuple[str, ...]:
    """What the go commands need beyond the config's environment: NETRC and the private-module settings.

    GONOPROXY is "none" (unless configured): GOPRIVATE would otherwise send its modules around the
    proxy to version control, which gobuild never uses."""
    names = {kv.partition("=")[0] for kv in configured}
    extra = [f"{name}={os.environ[name]}" for name in PASSED_THROUGH if name in os.environ and name not in names]
    if "GONOPROXY" not in names:
        extra.append("GONOPROXY=none")
    if auth_file and "NETRC" not in names:
        extra.append(f"NETRC={os.path.abspath(auth_file)}")
    return (*configured, *extra)
