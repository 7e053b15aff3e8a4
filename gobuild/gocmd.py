"""The one place that runs `go`: argv list, one environment policy, sandbox, timeout, streamed output.

Every go command of the server goes through GoRunner.run: downloads, package checks, compiles,
and the toolchain checks (`go version`, `go tool dist list`). Its environment is built from
scratch by environment() (nothing is inherited from the server). With Debian's bubblewrap
(`bwrap`) on the machine, each command runs in a sandbox (see Sandbox): its own identity, a
file-system view with only the toolchain, the module and build caches and its own HOME, no
network while compiling, resource limits, and no process that outlives the server. Paths in
what go prints are the sandbox's (/build, /goroot, /gomodcache, /gocache), never the server's.

The one exception is host_go_env: it asks the operator's own go for a setting (GOPROXY,
GOSUMDB, GOROOT) in the operator's environment, since that is what it is asked for.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from .durable import process_dir, remove_tree, write_atomic
from .spec import GoVersion, SpecError

# Tools old go commands run: go1.20 and older (cmd/dist) call `uname -m`. Nothing else of the server's PATH.
SYSTEM_PATH = "/usr/bin:/bin"


class GoCommandError(Exception):
    """A go command exited non-zero; carries its exit code and combined output."""

    def __init__(self, argv: Sequence[str], returncode: int, output: str) -> None:
        super().__init__(f"exit status {returncode}")
        self.argv = list(argv)
        self.returncode = returncode
        self.output = output


class GoTimeout(GoCommandError):
    """A go command ran past its deadline and was killed with its process group."""


@dataclass(frozen=True)
class GoPaths:
    """Directories shared by all go commands of one server."""

    data_dir: Path
    cache_dir: Path

    @property
    def modcache(self) -> Path:
        return self.cache_dir / "mod"

    def buildcache(self, goversion: str) -> Path:
        return self.cache_dir / "build" / goversion

    @property
    def sumdb_state(self) -> Path:
        # The go command's view of the checksum database (signed tree heads), kept across commands.
        return self.cache_dir / "sumdb"

    @property
    def cmds(self) -> Path:
        return process_dir(self.data_dir / "tmp") / "cmds"


def environment(
    paths: GoPaths,
    home: Path,
    goversion: str,
    goproxy: str,
    extra: Sequence[str] = (),
    target: tuple[str, str] | None = None,
) -> dict[str, str]:
    """The complete environment of a go command that builds, with the server's own paths (no sandbox)."""
    view = View(home=str(home), goroot="", modcache=str(paths.modcache), gocache=str(paths.buildcache(goversion)))
    return go_environment(view, goversion, goproxy, extra, target)


def go_environment(view: View, goversion: str | None, goproxy: str, extra: Sequence[str] = (),
                   target: tuple[str, str] | None = None, offline: bool = False) -> dict[str, str]:
    """The one environment policy of every go command: built from scratch, nothing inherited.

    goversion None: a toolchain query (`go version`, `go tool dist list`), GOTOOLCHAIN=local.
    offline: the compile step in the sandbox, which reads modules from the module cache only
    (already downloaded and verified): a file:// GOPROXY over its download cache, no GOSUMDB.
    """
    env = {
        "GOPROXY": goproxy,
        "PATH": SYSTEM_PATH,
        "CGO_ENABLED": "0",
        "GO111MODULE": "on",
        "GOTOOLCHAIN": goversion or "local",
        "HOME": view.home,
        "GOPATH": view.home + "/go",
        "GOMODCACHE": view.modcache or view.home + "/go/pkg/mod",
        "GOCACHE": view.gocache or view.home + "/.cache/go-build",
        "GOENV": "off",
        "GOTELEMETRY": "off",
        "GOFLAGS": "",
    }
    if goversion:
        env.update(version_environment(goversion))
    for kv in extra:
        key, _, value = kv.partition("=")
        env[key] = value
    if offline:
        env["GOPROXY"] = f"file://{view.modcache}/cache/download"
        env["GOSUMDB"] = "off"
    if target:
        env["GOOS"], env["GOARCH"] = target
    return env


def version_environment(goversion: str) -> dict[str, str]:
    """Settings a Go version needs to build reproducibly (parallel compilation before go1.26)."""
    try:
        minor = GoVersion.parse(goversion).minor
    except SpecError:
        return {}
    return {"GO19CONCURRENTCOMPILATION": "0"} if minor < 26 else {}


@contextmanager
def command_home(paths: GoPaths, name: str) -> Iterator[Path]:
    """A fresh HOME for one go command, with the checksum-database state copied in and back out."""
    paths.cmds.mkdir(parents=True, exist_ok=True)
    home = Path(tempfile.mkdtemp(prefix=name + "-", dir=paths.cmds))
    sumdb = home / "go" / "pkg" / "sumdb"
    try:
        prepare_home(home)
        if paths.sumdb_state.is_dir():
            shutil.copytree(paths.sumdb_state, sumdb)
        yield home
        _save_sumdb_state(sumdb, paths.sumdb_state)
    finally:
        remove_tree(home)


def prepare_home(home: Path) -> None:
    """Turn go's telemetry off in a HOME: else go starts a detached child that writes there after it exited.

    (GOTELEMETRY is not an environment variable go reads; the mode file in its config dir is.)
    """
    mode = home / ".config" / "go" / "telemetry" / "mode"
    mode.parent.mkdir(parents=True, exist_ok=True)
    mode.write_text("off\n")


def _save_sumdb_state(src: Path, dst: Path) -> None:
    """Copy each checksum-database tree head back atomically (the go command only advances them)."""
    if not src.is_dir():
        return
    for f in src.rglob("latest"):
        write_atomic(dst / f.relative_to(src), f.read_bytes())


_live: set[subprocess.Popen[bytes]] = set()  # running go commands, for stop_all()
_live_lock = threading.Lock()
_stopping = threading.Event()


def stop_all() -> None:
    """Kill every running go command with its process group, and refuse new ones (server shutdown)."""
    _stopping.set()
    with _live_lock:
        for proc in _live:
            _kill_group(proc)


def run(
    argv: Sequence[str],
    env: Mapping[str, str],
    cwd: Path,
    timeout: float,
    log: BinaryIO | None = None,
    mask: Sequence[tuple[str, str]] = (),
    pass_fds: Sequence[int] = (),
    shown_argv: Sequence[str] | None = None,
) -> str:
    """Run argv, streaming combined output line by line to log; return the output or raise.

    mask: (server path, name to show) pairs replaced in every line, so no server path is shown.
    A command killed by stop_all() raises GoTimeout: a temporary failure, never stored.
    """
    masks = [(h.encode(), i.encode()) for h, i in mask]
    with _live_lock:
        if _stopping.is_set():
            raise GoTimeout(argv, -1, "not started: the server is shutting down\n")
        proc = subprocess.Popen(
            list(argv), env=dict(env), cwd=cwd, stdin=subprocess.DEVNULL, pass_fds=tuple(pass_fds),
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
        )
        _live.add(proc)
    argv = list(shown_argv or argv)
    timed_out = threading.Event()

    def on_timeout() -> None:
        timed_out.set()
        _kill_group(proc)

    timer = threading.Timer(timeout, on_timeout)
    timer.start()
    chunks: list[bytes] = []
    with proc:
        try:
            assert proc.stdout is not None
            for line in proc.stdout:
                for host, inside in masks:
                    line = line.replace(host, inside)
                chunks.append(line)
                if log is not None:
                    log.write(line)
                    log.flush()
            returncode = proc.wait()
        finally:
            timer.cancel()
            if proc.poll() is None:  # an exception on our side: leave no build running
                _kill_group(proc)
                proc.wait()
            with _live_lock:
                _live.discard(proc)
    output = b"".join(chunks).decode("utf-8", "replace")
    if _stopping.is_set() and returncode != 0:
        raise GoTimeout(argv, returncode, output + "\n\ngo command killed: the server is shutting down\n")
    if timed_out.is_set():
        raise GoTimeout(argv, returncode, output + f"\n\ngo command killed after {timeout:g}s timeout\n")
    if returncode != 0:
        raise GoCommandError(argv, returncode, output)
    return output


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    """Kill the go command and every compiler or linker it started."""
    with suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)


# The sandbox ---------------------------------------------------------------------------------

SANDBOX_HOME = "/build"  # HOME, GOPATH (/build/go, binaries in /build/go/bin) and working directory
SANDBOX_GOROOT = "/goroot"
SANDBOX_MODCACHE = "/gomodcache"
SANDBOX_GOCACHE = "/gocache"
NOBODY = 65534  # the identity builds run as
# What a go command needs of the host besides its toolchain: libraries, CA certificates and name
# resolution for downloads. Nothing of the server's: no data dir, no config, no keys.
_SYSTEM_DIRS = ("/usr", "/bin", "/lib", "/lib64", "/etc/ssl", "/etc/ca-certificates", "/etc/pki")
_SYSTEM_FILES = ("/etc/resolv.conf", "/etc/hosts", "/etc/nsswitch.conf", "/etc/passwd", "/etc/group",
                 "/etc/localtime")


@dataclass(frozen=True)
class View:
    """Where a go command sees its directories: the server's paths, or the sandbox's."""

    home: str
    goroot: str
    modcache: str = ""
    gocache: str = ""


@dataclass(frozen=True)
class Limits:
    """Resource limits of every process in the sandbox (setrlimit, through prlimit)."""

    cpu_seconds: int = 3600  # per process; the build timeout bounds the whole command
    address_space: int = 16 << 30
    file_size: int = 2 << 30
    processes: int = 4096  # threads count too; shared by all builds of the sandbox identity
    open_files: int = 4096
    tmp_size: int = 4 << 30  # the sandbox's /tmp (go's work dir) is a tmpfs of at most this


@dataclass(frozen=True)
class Sandbox:
    """Runs commands under bubblewrap: namespaces, a minimal read-only file system, no network by default.

    A server running as root runs bwrap as root (no user namespace) and drops to NOBODY inside with
    setpriv, without capabilities: builds are a different user, also outside the sandbox. A server
    running as another user gets a user namespace, where it appears as NOBODY.
    """

    bwrap: str
    setpriv: str | None = None  # drop to NOBODY (root servers only)
    prlimit: str | None = None
    limits: Limits = Limits()

    @property
    def uid(self) -> int | None:
        """The real uid builds run as, if not the server's."""
        return NOBODY if self.setpriv else None

    def wrap(self, argv: Sequence[str], binds: Sequence[tuple[str, str, bool]], network: bool,
             cwd: str) -> list[str]:
        """argv run inside the sandbox, with binds (host path, sandbox path, writable)."""
        cmd = [self.bwrap, "--die-with-parent", "--new-session"]
        if self.setpriv:
            cmd += ["--unshare-ipc", "--unshare-pid", "--unshare-uts", "--unshare-cgroup-try"]
            if not network:
                cmd.append("--unshare-net")
        else:
            cmd += ["--unshare-all", "--uid", str(NOBODY), "--gid", str(NOBODY)]
            if network:
                cmd.append("--share-net")
        # /etc first, readable: bwrap run as root would make it 0700 for the files bound below, and
        # the build identity could then not read resolv.conf (no name lookup for downloads).
        cmd += ["--hostname", "gobuild", "--perms", "0755", "--dir", "/etc"]
        for d in _SYSTEM_DIRS + _SYSTEM_FILES:
            cmd += ["--ro-bind-try", d, d]
        cmd += ["--proc", "/proc", "--dev", "/dev", "--perms", "1777", "--size", str(self.limits.tmp_size),
                "--tmpfs", "/tmp"]
        for host, inside, writable in binds:
            cmd += ["--bind" if writable else "--ro-bind", host, inside]
        cmd += ["--chdir", cwd, "--"]
        if self.setpriv:
            cmd += [self.setpriv, f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups",
                    "--inh-caps=-all", "--bounding-set=-all"]
        if self.prlimit:
            lim = self.limits
            cmd += [self.prlimit, f"--cpu={lim.cpu_seconds}", f"--as={lim.address_space}",
                    f"--fsize={lim.file_size}", f"--nproc={lim.processes}", f"--nofile={lim.open_files}", "--"]
        return cmd + list(argv)


def find_sandbox(required: bool = False) -> tuple[Sandbox | None, str]:
    """The sandbox of this machine if bwrap is there and works, else None; and why not."""
    bwrap = shutil.which("bwrap")
    if not bwrap:
        return None, "bubblewrap (bwrap) is not installed"
    setpriv = shutil.which("setpriv") if os.geteuid() == 0 else None
    if os.geteuid() == 0 and not setpriv:
        return None, "running as root, but setpriv (util-linux) is missing to drop to an unprivileged user"
    sandbox = Sandbox(bwrap, setpriv, shutil.which("prlimit"))
    # Not only that bwrap starts: the build identity must read what a download's name lookup needs.
    probe = sandbox.wrap(["/bin/sh", "-c", "test ! -e /etc/resolv.conf || test -r /etc/resolv.conf"], [],
                         network=False, cwd="/")
    try:
        out = subprocess.run(probe, capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as e:
        return None, f"bwrap does not run: {e}"
    if out.returncode != 0:
        return None, f"bwrap does not work here: {out.stderr.strip()[:300]}"
    return sandbox, ""


def give_to(path: Path, uid: int | None) -> None:
    """Make a tree the sandbox identity's (the root server hands it over; a no-op otherwise).

    Every entry is checked, not only the top: a run without the sandbox (or in a user namespace,
    whose files the host sees as ours) may have added directories the sandbox identity could not
    write to, and go's build cache then records entries whose files it never wrote.
    """
    if uid is None or not path.exists():
        return
    for root, dirs, files in os.walk(path):
        for name in [root, *(os.path.join(root, n) for n in dirs + files)]:
            with suppress(OSError):
                if os.lstat(name).st_uid != uid:
                    os.lchown(name, uid, uid)


# Without the sandbox, go still dies with the server (not its compilers: they end at go's closed pipes).
_DIE_WITH_SERVER = [p, "--pdeathsig", "KILL", "--"] if (p := shutil.which("setpriv")) else []


class GoRunner:
    """Runs every go command of the server, with one environment policy, sandboxed where possible."""

    def __init__(self, paths: GoPaths | None, goproxy: str = "off", extra: Sequence[str] = (),
                 sandbox: Sandbox | None = None) -> None:
        self.paths = paths
        self.goproxy = goproxy
        self.extra = tuple(extra)
        self.sandbox = sandbox
        self._given: set[Path] = set()
        self._lock = threading.Lock()

    @property
    def sandboxed(self) -> bool:
        return self.sandbox is not None

    def run(self, goroot: Path, args: Sequence[str], home: Path, timeout: float, *,
            goversion: str | None = None, target: tuple[str, str] | None = None, network: bool = False,
            modcache: str = "", log: BinaryIO | None = None) -> str:
        """Run `go args` of the toolchain at goroot with HOME home; return its output (sandbox paths).

        modcache: "" (a toolchain query, no shared caches), "rw" (downloads) or "ro" (compiling);
        network: whether the command may reach the module proxy (only enforced in the sandbox,
        where a command without it reads modules from the module cache through a file:// GOPROXY).
        """
        host = self._host_view(goroot, home, goversion if modcache else None)
        if self.sandbox is None:
            env = go_environment(host, goversion, self.goproxy, self.extra, target)
            argv = [*_DIE_WITH_SERVER, str(goroot / "bin" / "go"), *args]
            return run(argv, env, home, timeout, log, mask=self._masks(host), shown_argv=["go", *args])
        view = View(SANDBOX_HOME, SANDBOX_GOROOT, SANDBOX_MODCACHE if modcache else "",
                    SANDBOX_GOCACHE if modcache else "")
        env = go_environment(view, goversion, self.goproxy, self.extra, target, offline=not network)
        binds = [(goroot, SANDBOX_GOROOT, False), (home, SANDBOX_HOME, True), *_sandbox_files(env, home, network)]
        if modcache:
            binds += [(Path(host.modcache), SANDBOX_MODCACHE, modcache == "rw"),
                      (Path(host.gocache), SANDBOX_GOCACHE, True)]
        for path, _, writable in binds:
            if writable:
                self._give(path, path == home)
        argv = self.sandbox.wrap([SANDBOX_GOROOT + "/bin/go", *args], [(str(h), i, w) for h, i, w in binds],
                                 network, SANDBOX_HOME)
        return run(argv, env, home, timeout, log, mask=self._masks(host), shown_argv=["go", *args])

    def host_path(self, shown: str, home: Path) -> Path:
        """The server's path of a path go printed (a sandbox path, or a masked one)."""
        assert self.paths is not None
        for inside, host in ((SANDBOX_MODCACHE, self.paths.modcache), (SANDBOX_HOME, home)):
            if shown == inside or shown.startswith(inside + "/"):
                return Path(str(host) + shown[len(inside):])
        return Path(shown)

    def _host_view(self, goroot: Path, home: Path, goversion: str | None) -> View:
        if self.paths is None or goversion is None:
            return View(str(home), str(goroot))
        return View(str(home), str(goroot), str(self.paths.modcache), str(self.paths.buildcache(goversion)))

    @staticmethod
    def _masks(host: View) -> list[tuple[str, str]]:
        """Server paths and the sandbox names they are shown as, longest first."""
        pairs = [(host.home, SANDBOX_HOME), (host.goroot, SANDBOX_GOROOT), (host.modcache, SANDBOX_MODCACHE),
                 (host.gocache, SANDBOX_GOCACHE)]
        return sorted(((h, i) for h, i in pairs if h), key=lambda p: -len(p[0]))

    def _give(self, path: Path, always: bool) -> None:
        """Hand a directory to the sandbox identity: each new HOME, and the caches once per process."""
        assert self.sandbox is not None
        path.mkdir(parents=True, exist_ok=True)  # a bind source must exist
        uid = self.sandbox.uid
        if uid is None:
            return
        with self._lock:
            if not always and path in self._given:
                return
            self._given.add(path)
        give_to(path, uid)


# Files the configured environment names for TLS: shown read-only inside the sandbox's /tmp (bwrap
# would create other missing parents with mode 0700, closed to the sandbox identity).
_CERT_VARIABLES = ("SSL_CERT_FILE", "SSL_CERT_DIR")
SANDBOX_NETRC = SANDBOX_HOME + "/.netrc"


def _sandbox_files(env: dict[str, str], home: Path, network: bool) -> list[tuple[Path, str, bool]]:
    """Make the files env refers to reachable in the sandbox, rewriting env to their sandbox paths.

    The module proxy's credentials (NETRC) go only to commands that may reach the network (downloads,
    which run no module code), as a copy in the command's own HOME, which the sandbox identity owns
    and which is removed with it; compiles never see them.
    """
    binds = []
    netrc = env.pop("NETRC", "")
    if netrc and network:
        shutil.copyfile(netrc, home / ".netrc")
        os.chmod(home / ".netrc", 0o600)
        env["NETRC"] = SANDBOX_NETRC
    for name in _CERT_VARIABLES:
        path = env.get(name, "")
        if os.path.isabs(path) and os.path.exists(path):
            env[name] = f"/tmp/{name.lower()}"
            binds.append((Path(path), env[name], False))
    return binds


def host_go_env(name: str) -> str:
    """What the operator's go (on PATH) says of one setting, in the operator's environment; "" if none."""
    go = shutil.which("go")
    if not go:
        return ""
    try:
        out = subprocess.run([go, "env", name], capture_output=True, text=True, timeout=60,
                             stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return out.stdout.strip() if out.returncode == 0 else ""
