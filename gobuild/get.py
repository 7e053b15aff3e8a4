"""`gobuild get`: look a build up through a server's signed log, download it and check its sum."""

from __future__ import annotations

import os
import platform
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import requests
import urllib3

from . import urls

# The "as" imports are re-exports: callers import `get` alone for the command and its parts.
from .getcmd.errors import EXIT_ERROR as EXIT_ERROR
from .getcmd.errors import EXIT_SECURITY as EXIT_SECURITY
from .getcmd.errors import EXIT_USAGE as EXIT_USAGE
from .getcmd.errors import GetError as GetError
from .getcmd.errors import SecurityFailure as SecurityFailure
from .getcmd.errors import UsageError as UsageError
from .getcmd.goflags import normalize_go_flags as normalize_go_flags
from .getcmd.output import Output as Output
from .getcmd.output import mb
from .getcmd.safeinstall import CHUNK
from .getcmd.safeinstall import gunzip as gunzip
from .getcmd.safeinstall import write_verified as write_verified
from .spec import BuildSpec, GoVersion, Record, SpecError, parse_sum
from .targets import DEFAULT_TARGETS
from .tlog import client as tlogclient
from .tlog import note

USER_AGENT = "gobuild-get (https://github.com/mjl-/gobuild)"
TIMEOUT = 300.0  # a lookup may wait for a build on the server

_SEMVER = re.compile(r"v(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?")

# Python's names for this machine -> Go's GOOS/GOARCH.
_GOOS = {"linux": "linux", "darwin": "darwin", "win32": "windows", "cygwin": "windows", "aix": "aix",
         "sunos5": "solaris", "dragonfly": "dragonfly"}
_GOARCH = {"x86_64": "amd64", "amd64": "amd64", "i386": "386", "i486": "386", "i586": "386", "i686": "386",
           "x86": "386", "aarch64": "arm64", "arm64": "arm64", "armv5l": "arm", "armv6l": "arm", "armv7l": "arm",
           "armv8l": "arm", "arm": "arm", "riscv64": "riscv64", "ppc64le": "ppc64le", "ppc64": "ppc64",
           "s390x": "s390x", "mips": "mips", "mipsel": "mipsle", "mips64": "mips64", "mips64el": "mips64le",
           "loongarch64": "loong64"}


@dataclass(frozen=True)
class Options:
    """The flags of `gobuild get`, as typed (None: not given)."""

    verifierkey: str | None = None
    url: str | None = None
    sum: str | None = None
    target: str | None = None
    goversion: str = "latest"
    stripped: bool = False
    bindir: str = "."
    download: bool = True
    quiet: bool = False
    verbose: bool = False



# What to look up --------------------------------------------------------------------------------


def local_target() -> tuple[str, str]:
    """Return this machine's GOOS/GOARCH, or raise UsageError if Go has no name for it."""
    plat = sys.platform
    goos = _GOOS.get(plat) or next((g for g in ("freebsd", "openbsd", "netbsd") if plat.startswith(g)), None)
    goarch = _GOARCH.get(platform.machine().lower())
    if goos is None or goarch is None or (goos, goarch) not in DEFAULT_TARGETS:
        raise UsageError(f"cannot tell the Go target of this machine ({plat}, {platform.machine()}): "
                         "pass -target goos/goarch")
    return goos, goarch


def parse_target(s: str) -> tuple[str, str]:
    """Parse -target goos/goarch against the targets gobuild builds for."""
    goos, slash, goarch = s.partition("/")
    if not slash or (goos, goarch) not in DEFAULT_TARGETS:
        raise UsageError(f"bad -target {s!r}: expected goos/goarch, e.g. linux/amd64, "
                         "one of the targets gobuild builds")
    return goos, goarch


def parse_goversion(s: str) -> str:
    """Return "latest" or the canonical form of a Go version (go1.22 is go1.22.0 on the server)."""
    if s == "latest":
        return s
    try:
        return str(GoVersion.parse(s))
    except SpecError as e:
        raise UsageError(f"bad -goversion: {e}") from None


def parse_module_arg(arg: str) -> tuple[str, str, str]:
    """Split module[@version[/package]] into module, version ("latest" if absent) and dir ("/..." form)."""
    mod, at, rest = arg.partition("@")
    if not at:
        return arg, "latest", "/"
    version, _, pkg = rest.partition("/")
    pkg = pkg.rstrip("/")
    return mod, version, "/" + pkg if pkg else "/"


def make_spec(arg: str, target: tuple[str, str], goversion: str, stripped: bool) -> BuildSpec:
    """Build and validate the spec to look up."""
    mod, version, pkgdir = parse_module_arg(arg)
    if not version:
        raise UsageError(f"bad argument {arg!r}: empty version after @")
    spec = BuildSpec(mod, version, pkgdir, target[0], target[1], goversion, stripped)
    try:
        # The wire parser has all the rules (module needs a dot, clean paths): reuse it.
        return BuildSpec.parse(str(spec), DEFAULT_TARGETS)
    except SpecError as e:
        raise UsageError(f"bad argument {arg!r}: {e}") from None


# Keys, URLs and local state ---------------------------------------------------------------------


def config_dir() -> Path:
    """Return the user's gobuild config dir: $XDG_CONFIG_HOME/gobuild or ~/.config/gobuild."""
    base = os.environ.get("XDG_CONFIG_HOME")
    if not base and sys.platform == "win32":
        base = os.environ.get("APPDATA")
    return Path(base or Path.home() / ".config") / "gobuild"


def cache_dir() -> Path:
    """Return the user cache dir as Go's os.UserCacheDir picks it."""
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Caches"
    if sys.platform == "win32":
        local = os.environ.get("LOCALAPPDATA")
        if not local:
            raise GetError("cannot find the user cache dir: %LocalAppData% is not set")
        return Path(local)
    xdg = os.environ.get("XDG_CACHE_HOME")
    if xdg and os.path.isabs(xdg):
        return Path(xdg)
    return Path.home() / ".cache"


def state_dir(key_name: str) -> Path:
    """Return the client's state dir for one log: <cache>/gobuild/sumclient/<keyname>/."""
    return cache_dir() / "gobuild" / "sumclient" / key_name


def _read_setting(path: Path) -> str | None:
    """Return the first line of a config file that is neither blank nor a # comment."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as e:
        raise GetError(f"reading {path}: {e}") from None
    return next((s.strip() for s in lines if s.strip() and not s.lstrip().startswith("#")), None)


def parse_verifier(key: str, origin: str) -> note.Verifier:
    """Parse a verifier key, naming where it came from when it is bad."""
    try:
        return note.Verifier.parse(key.strip())
    except note.KeyFormatError as e:
        raise UsageError(f"bad verifier key from {origin}: {e} "
                         "(expected name+hash+key as shown by the server)") from None


def resolve_key_and_url(opts: Options, confdir: Path) -> tuple[note.Verifier, str]:
    """Pick the verifier key and log URL: flags first, then the config dir, then the key's name."""
    cfg_key = _read_setting(confdir / "verifierkey")
    cfg_url = _read_setting(confdir / "url")
    if opts.verifierkey:
        verifier = parse_verifier(opts.verifierkey, "-verifierkey")
    elif cfg_key:
        verifier = parse_verifier(cfg_key, str(confdir / "verifierkey"))
    else:
        raise UsageError(f"no verifier key: pass -verifierkey name+hash+key (shown on the server's home page) "
                         f"or write it to {confdir / 'verifierkey'}")
    url = opts.url
    # The configured URL belongs to the configured key's server, not to any other key.
    if not url and cfg_url and cfg_key and parse_verifier(cfg_key, str(confdir / "verifierkey")).name == verifier.name:
        url = cfg_url
    return verifier, (url or urls.default_tlog_url(verifier.name)).rstrip("/")


# Checking what the log says ---------------------------------------------------------------------


def check_record(want: BuildSpec, got: Record, expected_sum: str | None) -> None:
    """Check the record answers the request: -sum needs it exactly, else what was explicit must match."""
    if expected_sum is not None:
        if got.spec != want:
            raise GetError(f"lookup resolved to {got.spec}, -sum needs an exact request (version, -goversion, -target)")
        if got.sum != expected_sum:
            raise GetError(f"remote has different sum {got.sum}, expected {expected_sum}")
        return
    # The server may resolve "latest" and version queries, but nothing else may change.
    g = got.spec
    same = (g.module, g.dir, g.goos, g.goarch, g.stripped) == (
        want.module, want.dir, want.goos, want.goarch, want.stripped)
    if want.goversion != "latest" and g.goversion != want.goversion:
        same = False
    if _SEMVER.fullmatch(want.version) and g.version != want.version:
        same = False
    if not same or "latest" in (g.version, g.goversion):
        raise GetError(f"server answered lookup of {want} with a record for {g}")



# Downloading ------------------------------------------------------------------------------------


def _open_download(session: requests.Session, url: str) -> requests.Response:
    """GET url for streaming; raise GetError unless it answers 200."""
    try:
        # identity: we want the stored .gz bytes, not a transfer-level re-encoding of them.
        resp = session.get(url, stream=True, timeout=TIMEOUT, headers={"Accept-Encoding": "identity"})
    except requests.RequestException as e:
        raise GetError(f"download {url}: {e}") from None
    if resp.status_code != 200:
        resp.close()
        raise GetError(f"download {url}: http {resp.status_code} {resp.reason}")
    return resp


def _raw_chunks(resp: requests.Response, url: str) -> Iterator[bytes]:
    """Yield the body as sent (a Content-Encoding: gzip label must not make requests gunzip it)."""
    try:
        yield from resp.raw.stream(CHUNK, decode_content=False)
    except (urllib3.exceptions.HTTPError, OSError) as e:
        raise GetError(f"download {url}: {e}") from None


def download(session: requests.Session, tlog_url: str, record: Record, dst: Path, out: Output) -> None:
    """Download the record's binary to dst, verified against the record's sum and size."""
    spec = record.spec
    url = urls.download_url(tlog_url, spec, record.sum)
    out.debug(f"downloading {url}")
    try:
        resp = _open_download(session, url)
    except GetError:
        if spec.legacy_exec_name == spec.exec_name:
            raise
        # An original gobuild names /vN binaries after the "vN" element.
        url = urls.download_url(tlog_url, spec, record.sum, legacy=True)
        out.debug(f"downloading {url}")
        resp = _open_download(session, url)
    progress = out.progress(record.size)
    try:
        with resp:
            write_verified(_raw_chunks(resp, url), dst.parent, dst, record, progress)
    finally:
        progress.close()


# The command ------------------------------------------------------------------------------------


def _new_client(url: str, verifier: note.Verifier, session: requests.Session) -> tlogclient.Client:
    """Return a tlog client keeping its state in this key's state dir."""
    try:
        return tlogclient.Client(url, str(verifier), state_dir(verifier.name), session=session, timeout=TIMEOUT)
    except tlogclient.StateError as e:
        raise UsageError(str(e)) from None


def lookup(client: tlogclient.Client, spec: BuildSpec) -> tuple[int, Record]:
    """Look spec up in the log, verified; map client failures to GetError."""
    key = str(spec)
    try:
        number, text = client.lookup(key)
    except tlogclient.SecurityError as e:
        raise SecurityFailure(str(e)) from None
    except tlogclient.StateError as e:
        raise GetError(f"{e} (stored in {client.state_dir / 'config' / 'key'}; remove that file only if the "
                       f"server's key really changed)") from None
    except tlogclient.FetchError as e:
        raise GetError(f"lookup {key}: {e}") from None  # the server's answer says why
    except tlogclient.ClientError as e:
        raise GetError(f"lookup {key}: {e}") from None
    try:
        return number, Record.parse(text)
    except SpecError as e:
        raise GetError(f"lookup {key}: bad record {text!r}: {e}") from None


def run(opts: Options, arg: str, out: Output | None = None, session: requests.Session | None = None) -> Path | None:
    """Run `gobuild get`; return the written binary's path, or None with -download=false."""
    out = out or Output(opts.quiet, opts.verbose)
    target = parse_target(opts.target) if opts.target else local_target()
    spec = make_spec(arg, target, parse_goversion(opts.goversion), opts.stripped)
    expected = _check_sum_flag(opts.sum)
    verifier, url = resolve_key_and_url(opts, config_dir())
    dst = _destination(opts, spec) if opts.download else None

    if session is None:
        session = requests.Session()
        session.headers["User-Agent"] = USER_AGENT
    client = _new_client(url, verifier, session)
    out.debug(f"looking up {spec} at {url}, state in {client.state_dir}")
    number, record = lookup(client, spec)
    out.debug(f"record {number} in tree of {client.latest()[0].n} records, verified")
    check_record(spec, record, expected)
    if expected is None:
        out.info(f"resolved to {record.spec}, sum {record.sum}")
    if dst is None:
        return None
    # The resolved spec names the binary as the request did: module and dir cannot change.
    download(session, url, record, dst, out)
    out.info(f"writing to {dst}, size {mb(record.size)}")
    return dst


def _check_sum_flag(s: str | None) -> str | None:
    """Validate -sum early: a typo should not cost a lookup."""
    if s is None:
        return None
    try:
        parse_sum(s)
    except SpecError as e:
        raise UsageError(f"bad -sum: {e}") from None
    return s


def _destination(opts: Options, spec: BuildSpec) -> Path:
    """Return <bindir>/<name>; refuse before any network traffic if it exists or bindir is missing."""
    bindir = Path(opts.bindir)
    if not bindir.is_dir():
        raise GetError(f"-bindir {bindir} is not a directory")
    dst = bindir / spec.exec_name
    if os.path.lexists(dst):
        raise GetError(f"{dst} already exists, not overwriting")
    return dst
