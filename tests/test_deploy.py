"""The shipped deployment files agree with the code: alert rules name real metrics, the unit and
the container stop with SIGTERM, reload with SIGHUP and keep the admin listener private."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

from gobuild import config as configmod
from gobuild.metrics import Metrics

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"


def exposed_names() -> set[str]:
    """Every sample name the metrics expose, labelled ones included before their first event."""
    suffixes = {"counter": ("_total",), "gauge": ("",), "histogram": ("_bucket", "_count", "_sum")}
    return {family.name + suffix for family in Metrics().registry.collect() for suffix in suffixes[family.type]}


def test_alert_rules_parse_and_name_only_metrics_that_exist() -> None:
    rules = yaml.safe_load((DEPLOY / "alerts.yml").read_text())["groups"][0]["rules"]
    names = exposed_names()
    assert len(rules) >= 5
    for rule in rules:
        assert rule["labels"]["severity"] in ("page", "ticket"), rule["alert"]
        for metric in re.findall(r"\b(gobuild_\w+)", rule["expr"]):
            assert metric in names, (rule["alert"], metric)
    alerts = {r["alert"] for r in rules}
    assert {"GobuildVerifierMismatch", "GobuildRecompileMismatch", "GobuildLogAppendErrors",
            "GobuildUnknownBuildFailures", "GobuildPanics"} <= alerts


def test_systemd_unit_stops_with_sigterm_reloads_with_sighup_and_writes_only_data() -> None:
    unit = (DEPLOY / "gobuild.service").read_text()
    assert "KillSignal=SIGTERM" in unit and "ExecReload=/bin/kill -HUP $MAINPID" in unit
    assert "ProtectSystem=strict" in unit and "ReadWritePaths=/var/lib/gobuild" in unit
    stop = int(re.search(r"TimeoutStopSec=(\d+)", unit).group(1))  # type: ignore[union-attr]
    assert stop > configmod.Config().shutdown_timeout


def test_container_keeps_data_in_a_volume_and_the_admin_listener_private() -> None:
    containerfile = (DEPLOY / "Containerfile").read_text()
    assert "VOLUME /data" in containerfile and "EXPOSE 8000" in containerfile and "8001" not in re.sub(
        r"#.*", "", containerfile)
    cfg = json.loads((DEPLOY / "container-config.json").read_text())
    assert cfg["data_dir"] == "/data" and cfg["admin_listen"].startswith("127.0.0.1:")
    loaded = configmod.load(str(DEPLOY / "container-config.json"), goproxy="http://127.0.0.1:1")
    assert loaded.log_format == "json"
