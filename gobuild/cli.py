"""The `gobuild` command: serve, get, verify, genkey, sum, config."""

from __future__ import annotations

import ctypes
import json
import socket
import sys
import threading
import time
import traceback
from collections.abc import Sequence
from typing import Any

import click

from . import config as configmod
from . import shutdown
from .spec import sum_from_digest

TRIM_SECONDS = 2.0  # how soon an idle server returns freed memory to the system


class CommandError(click.ClickException):
    """A one-line error and exit code 2, never a traceback."""

    exit_code = 2


@click.group()
def cli() -> None:
    """gobuild: reproducible builds of Go commands from the Go module proxy."""


@cli.command()
@click.option("--config", "config_file", metavar="FILE", help="JSON config file (see config.example.json)")
@click.option("--listen", metavar="HOST:PORT", help="override the config's listen address")
def serve(config_file: str | None, listen: str | None) -> None:
    """Run the HTTP server."""
    run_server(config_file, listen)


@cli.command("worker")
@click.option("--config", "config_file", metavar="FILE", required=True,
              help="JSON config file with queue, queue_secret_file and this machine's toolchains and caches")
def worker_cmd(config_file: str) -> None:
    """Run the builds a coordinator queued (see queue in `gobuild config`) until SIGTERM."""
    import logging

    import redis

    from . import services, worker
    from .goproxy import redacted

    try:
        cfg = configmod.load(config_file)
        built = services.build_worker_services(cfg)
    except configmod.ConfigError as e:
        raise CommandError(str(e)) from e
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    logging.getLogger("rq").setLevel(logging.WARNING)  # it tells of every registry cleaning, each heartbeat
    try:
        worker.run(built)
    except redis.RedisError as e:
        raise CommandError(f"the build queue at {redacted(cfg.queue)} is unreachable: {e}") from e


def _tame_malloc() -> None:
    """Keep glibc from holding freed memory: few malloc arenas, and give free pages back when idle.

    Each waitress thread would otherwise get its own arena, and the memory of big responses
    stays in them after the load is gone (measured by bench/run.py, section 4).
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-8, 2)  # M_ARENA_MAX
    except (OSError, AttributeError):
        return  # not glibc: nothing to tame

    def trim() -> None:
        while True:  # cheap when there is nothing to give back
            time.sleep(TRIM_SECONDS)
            libc.malloc_trim(0)

    threading.Thread(target=trim, name="malloc-trim", daemon=True).start()


def run_server(config_file: str | None, listen: str | None) -> None:
    """Load the config, create the apps and serve them with waitress until SIGTERM (or ^C)."""
    from . import serving

    _tame_malloc()

    from .web import create_app
    from .web.admin import create_admin_app
    from .web.current import services_of

    try:
        cfg = configmod.load(config_file, listen=listen)
        _check_free("listen", cfg.listen)  # before create_app writes anything to the data dir
        if cfg.admin_listen:
            _check_free("admin_listen", cfg.admin_listen)
        app = create_app(cfg)
    except configmod.ConfigError as e:
        raise CommandError(str(e)) from e
    services = services_of(app)

    def reload() -> None:
        services.reload(configmod.load(config_file, listen=listen))

    serving.raise_open_files_limit()
    # Waitress trusts one proxy address at most: with trusted_proxies (networks), admission.client
    # decides itself which X-Forwarded-For hops to believe, so waitress must leave the header.
    server = _listener(app, cfg.listen, cfg.threads, clear_untrusted_proxy_headers=not cfg.trusted_proxies,
                       max_request_body_size=serving.max_body(cfg.queue_max_upload_mb if cfg.queue else 0),
                       prepare=getattr(app.wsgi_app, "prepare", None))  # the fast path's, when it is on
    admin = None
    if cfg.admin_listen:  # its own server and threads: never reachable through the public port
        admin = _listener(create_admin_app(services, reload if config_file else None), cfg.admin_listen, 4,
                          ident="gobuild-admin")
        threading.Thread(target=admin.run, name="admin", daemon=True).start()
    click.echo(f"gobuild serving on http://{cfg.listen}/ with data in {cfg.data_path}"
               + (f", admin on http://{cfg.admin_listen}/" if cfg.admin_listen else ""), err=True)
    shutdown.install(reload if config_file else None)
    server.run()  # returns on SIGTERM/SIGINT (waitress catches the SystemExit raised by the handler)
    server.close()  # stop accepting
    if admin is not None:
        admin.close()
    shutdown.finish_builds(services.coordinator, cfg.shutdown_timeout)


def _host_port(listen: str) -> tuple[str, int]:
    """A listen address (host:port, [v6]:port) split; the config checked it is well formed."""
    host, _, port = listen.rpartition(":")
    return host.strip("[]"), int(port)


def _check_free(key: str, listen: str) -> None:
    """Fail with the config key's name if listen (host:port) cannot be bound now."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(*_host_port(listen), type=socket.SOCK_STREAM)[0]
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as waitress binds
            probe.bind(address)
    except OSError as e:
        hint = f'set {key} in the config' + (', or "" for no admin listener' if key == "admin_listen" else "")
        raise CommandError(f"cannot listen on {key} {listen}: {e.strerror or e} ({hint})") from e


def _listener(app: Any, listen: str, threads: int, **options: Any) -> Any:
    """A waitress server (serving.create_server) bound to listen (host:port), or a one-line error."""
    from . import serving

    try:
        return serving.create_server(app, *_host_port(listen), threads, **options)
    except OSError as e:
        raise CommandError(f"cannot listen on {listen}: {e.strerror or e}") from e


class GoFlagCommand(click.Command):
    """A command whose flags follow Go's flag package: -name, --name, -name=value, -bool=false."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        from . import get as getmod

        try:
            args = getmod.normalize_go_flags(args)
        except ValueError as e:
            raise click.UsageError(str(e), ctx) from None
        return super().parse_args(ctx, args)


class GetFailure(Exception):
    """A failed `gobuild get`: one line (or the whole security report) and its exit code.

    Not a ClickException: click declares exit_code a class variable, and get's code varies."""

    def __init__(self, message: str, exit_code: int, verbatim: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code
        self.verbatim = verbatim

    def show(self) -> None:
        prefix = "" if self.verbatim else "Error: "
        click.echo(prefix + self.message, err=True)


_GET_HELP = """Look a build up in a gobuild server's transparency log, download it and verify it.

MODULE is module[@version[/package]]; version defaults to latest. The verifier key comes from
-verifierkey, else from the file verifierkey in ~/.config/gobuild/ (and the log URL from the file
url there). Exit codes: 0 ok, 1 failure, 2 usage, 3 the server's log contradicts what this client
saw before (SECURITY ERROR, with the proof).
"""


@cli.command("get", cls=GoFlagCommand, help=_GET_HELP,
             context_settings={"help_option_names": ["-h", "-help", "--help"]})
@click.option("-verifierkey", "verifierkey", metavar="KEY", help="the log's verifier key, name+hash+key")
@click.option("-url", "url", metavar="URL", help="the log's URL; default https://<keyname>/tlog")
@click.option("-sum", "sum_", metavar="SUM", help="require this sum (needs an exact version, -goversion and -target)")
@click.option("-target", "target", metavar="GOOS/GOARCH", help="target platform; default this machine's")
@click.option("-goversion", "goversion", default="latest", show_default=True, help="Go toolchain version")
@click.option("-stripped/-no-stripped", "stripped", default=False, help="the build without symbol table")
@click.option("-bindir", "bindir", default=".", show_default=True, metavar="DIR",
              help="directory to write the binary to")
@click.option("-download/-no-download", "download", default=True,
              help="download the binary (-download=false: only verify)")
@click.option("-quiet/-no-quiet", "quiet", default=False, help="print nothing but errors")
@click.option("-verbose/-no-verbose", "verbose", default=False, help="print what is looked up and downloaded")
@click.argument("module")
def get_cmd(module: str, sum_: str | None, **flags: Any) -> None:
    """Download a build, verified through the server's transparency log."""
    from . import get as getmod

    opts = getmod.Options(sum=sum_, **flags)
    try:
        getmod.run(opts, module)
    except getmod.SecurityFailure as e:
        raise GetFailure(str(e), e.exit_code, verbatim=True) from None
    except getmod.GetError as e:
        raise GetFailure(_one_line(str(e), opts.verbose), e.exit_code) from None
    except click.ClickException:
        raise
    except Exception as e:  # a bug or an unforeseen OS failure: still one line, no traceback
        if opts.verbose:
            traceback.print_exc()
        raise GetFailure(_one_line(f"{type(e).__name__}: {e}", opts.verbose), getmod.EXIT_ERROR) from None


def _one_line(msg: str, verbose: bool) -> str:
    """The first line of msg, or all of it when verbose."""
    return msg if verbose else msg.split("\n", 1)[0]


_VERIFY_HELP = """Check a downloaded BINARY against its proof file (the `proof` under its result URL), offline.

Checks that the verifier key signed the proof's tree head, that the inclusion proof puts the
record in that tree, and that the binary's sum and size are the record's. -online also asks the
log whether it still holds that tree head. Exit codes: 0 ok, 1 does not verify, 2 usage,
3 the log contradicts the proof (SECURITY ERROR).
"""


@cli.command("verify", help=_VERIFY_HELP, context_settings={"help_option_names": ["-h", "-help", "--help"]})
@click.option("-verifierkey", "--verifierkey", "verifierkey", metavar="KEY",
              help="the log's verifier key; default from ~/.config/gobuild/verifierkey")
@click.option("-proof", "--proof", "proof", metavar="FILE", help="the proof file; default BINARY.proof")
@click.option("-url", "--url", "url", metavar="URL", help="the log's URL for -online; default from the key's name")
@click.option("-online", "--online", "online", is_flag=True, help="also check the log is still consistent")
@click.argument("binary")
def verify_cmd(binary: str, **flags: Any) -> None:
    """Check a binary against its proof, offline."""
    from . import verifycmd

    try:
        click.echo(verifycmd.run(verifycmd.Options(**flags), binary))
    except verifycmd.VerifyError as e:
        raise GetFailure(str(e), e.exit_code, verbatim=e.exit_code == verifycmd.EXIT_SECURITY) from None


@cli.command("genkey")
@click.argument("name")
def genkey_cmd(name: str) -> None:
    """Generate a signer/verifier key pair for a transparency log named NAME (the server's host name)."""
    from .tlog import note

    try:
        skey, vkey = note.generate_key(name)
    except note.KeyFormatError as e:
        raise CommandError(str(e)) from None
    click.echo(f"Signer key: {skey}", err=True)
    click.echo(f"Verifier key: {vkey}", err=True)
    click.echo("Keep the signer key secret: put it in a file (mode 0600) and point signer_key_file in the "
               "config to it. Publish the verifier key; clients use it with: gobuild get -verifierkey "
               f"{vkey} ...", err=True)


@cli.command("sum")
def sum_cmd() -> None:
    """Print the gobuild sum of the binary on standard input."""
    import hashlib

    h = hashlib.sha256()
    stdin = sys.stdin.buffer
    while chunk := stdin.read(1 << 20):
        h.update(chunk)
    click.echo(sum_from_digest(h.digest()))


@cli.command("config")
def config_cmd() -> None:
    """Print an example config with every key, its default and its help."""
    click.echo(json.dumps(configmod.example(), indent=2))


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit code."""
    try:
        cli.main(args=list(argv) if argv is not None else None, prog_name="gobuild", standalone_mode=False)
    except (click.ClickException, GetFailure) as e:
        e.show()
        return e.exit_code
    except click.exceptions.Abort:
        return 1
    except click.exceptions.Exit as e:
        return e.exit_code
    return 0
