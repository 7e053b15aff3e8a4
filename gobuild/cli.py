"""The `gobuild` command: serve, sum, config."""

from __future__ import annotations

import json
import sys
from typing import Sequence

import click

from . import config as configmod
from .spec import sum_from_digest


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


def run_server(config_file: str | None, listen: str | None) -> None:
    """Load the config, create the app and serve it with waitress."""
    import waitress

    from .web import create_app

    try:
        cfg = configmod.load(config_file, listen=listen)
        app = create_app(cfg)
    except configmod.ConfigError as e:
        raise CommandError(str(e)) from e
    host, port = cfg.host_port
    click.echo(f"gobuild serving on http://{cfg.listen}/ with data in {cfg.data_path}", err=True)
    waitress.serve(app, host=host, port=port, threads=cfg.threads, channel_timeout=1800,
                   ident="gobuild", clear_untrusted_proxy_headers=True)


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
    except click.ClickException as e:
        e.show()
        return e.exit_code
    except click.exceptions.Abort:
        return 1
    except click.exceptions.Exit as e:
        return e.exit_code
    return 0
