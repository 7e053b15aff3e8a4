"""The bill of materials of a build as CycloneDX JSON, made with cyclonedx-python-lib from its build info.

Deterministic for a result (serial number from the sum, timestamp from the build), so it can be
served as immutable like everything else under a result URL.
"""

from __future__ import annotations

import base64
import binascii
import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # imported when an SBOM is made: the library is a few MiB the server rarely needs
    from cyclonedx.model import HashType
    from cyclonedx.model.component import Component
    from packageurl import PackageURL

from .buildinfo import BuildInfo, Module
from .spec import BuildSpec
from .store import Result

# A fixed namespace: the same build always gets the same serial number.
_SERIAL_NAMESPACE = uuid.UUID("6f1c3c1e-52a4-4f0e-9d0b-6d1b8a3f5e10")


def _purl(path: str, version: str) -> PackageURL:
    """The package URL of a Go module (pkg:golang/<path>@<version>)."""
    from packageurl import PackageURL
    namespace, _, name = path.rpartition("/")
    return PackageURL(type="golang", namespace=namespace or None, name=name, version=version)


def _h1_hashes(sum_: str) -> list[HashType]:
    """go.sum's h1: is a SHA-256 (over the module's file names and their SHA-256s): that hash, as hex."""
    from cyclonedx.model import HashAlgorithm, HashType
    if not sum_.startswith("h1:"):
        return []
    try:
        raw = base64.b64decode(sum_[3:], validate=True)
    except binascii.Error:
        return []
    return [HashType(alg=HashAlgorithm.SHA_256, content=raw.hex())] if len(raw) == 32 else []


def _module_component(mod: Module) -> Component:
    """A dependency; when replaced, the replacement is what was compiled in."""
    from cyclonedx.model import Property
    from cyclonedx.model.component import Component, ComponentType
    used = mod.replaced_by or mod
    props = [Property(name="gobuild:h1", value=used.sum)] if used.sum else []
    if mod.replaced_by:
        props.append(Property(name="gobuild:replaces", value=f"{mod.path}@{mod.version}"))
    return Component(type=ComponentType.LIBRARY, name=used.path, version=used.version,
                     purl=_purl(used.path, used.version), hashes=_h1_hashes(used.sum), properties=props,
                     bom_ref=f"{used.path}@{used.version}")


def make(spec: BuildSpec, result: Result, info: BuildInfo) -> str:
    """The CycloneDX 1.6 JSON document of one build."""
    from cyclonedx.model import HashAlgorithm, HashType, Property
    from cyclonedx.model.bom import Bom, BomMetaData
    from cyclonedx.model.component import Component, ComponentType
    from cyclonedx.output.json import JsonV1Dot6
    main = Component(
        type=ComponentType.APPLICATION, name=spec.package, version=spec.version,
        purl=_purl(spec.module, spec.version), bom_ref=str(spec),
        hashes=[HashType(alg=HashAlgorithm.SHA_256, content=result.binary)],  # the blob name is its sha256
        properties=[Property(name="gobuild:sum", value=result.sum),
                    Property(name="gobuild:target", value=f"{spec.goos}/{spec.goarch}"),
                    Property(name="gobuild:goversion", value=info.go_version),
                    *(Property(name=f"gobuild:build:{k}", value=v) for k, v in info.settings)],
    )
    deps = [_module_component(d) for d in info.deps]
    created = datetime.strptime(result.created, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    bom = Bom(serial_number=uuid.uuid5(_SERIAL_NAMESPACE, f"{spec}{result.sum}"),
              metadata=BomMetaData(component=main, timestamp=created), components=deps)
    bom.register_dependency(main, deps)
    for d in deps:
        bom.register_dependency(d, [])
    return str(JsonV1Dot6(bom).output_as_string(indent=1))
