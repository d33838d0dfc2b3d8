"""Automatic equipment modelling: browse an OPC UA server into a site file.

:func:`discover` walks the address space under ``Objects`` (or a given
node), keeps every variable with a numeric or boolean data type and reads its
``EngineeringUnits`` (unit), ``EURange`` (range), access level (writable
variables become MVs, others CVs) and description. Object names give the
tag path: segments are sanitised to ISA-95 path characters, the segments
shared by every variable (typically the server's own root object) are
dropped while paths are deeper than three levels, and paths still deeper
keep their last three (the site prefix ``site/area/line`` takes the other
three). :func:`site_yaml` renders
the result as a site file for ``autofab run``, to be reviewed (limits, kinds,
loops) before use.
"""

from __future__ import annotations

import math
import re
from typing import Any

import yaml
from asyncua import ua
from asyncua.client.client import Client
from asyncua.common.node import Node
from asyncua.ua.attribute_ids import AttributeIds
from asyncua.ua.object_ids import ObjectIds

from autofab.connectors.opcua import OpcUaConnector, OpcUaOptions

_BAD = re.compile(r"[^A-Za-z0-9_.\-]+")
_NUMERIC = {
    ua.VariantType.Boolean,
    ua.VariantType.SByte,
    ua.VariantType.Byte,
    ua.VariantType.Int16,
    ua.VariantType.UInt16,
    ua.VariantType.Int32,
    ua.VariantType.UInt32,
    ua.VariantType.Int64,
    ua.VariantType.UInt64,
    ua.VariantType.Float,
    ua.VariantType.Double,
}


def segment(name: str) -> str:
    """A browse name as a valid path segment."""
    s = _BAD.sub("_", name).strip("_") or "x"
    return s if re.match(r"^[A-Za-z0-9_]", s) else f"_{s}"


async def _props(node: Node) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for child in await node.get_properties():
        bname = (await child.read_browse_name()).Name
        if bname in ("EngineeringUnits", "EURange", "TagKind"):
            try:
                out[bname] = await child.read_value()
            except Exception:  # unreadable property: skip it
                continue
    return out


async def _walk(
    node: Node, path: list[str], depth: int, out: list[dict[str, Any]], max_depth: int
) -> None:
    if depth > max_depth:
        return
    for child in await node.get_children(refs=ObjectIds.HierarchicalReferences):
        if child.nodeid.NamespaceIndex == 0:  # standard nodes (Server, types)
            continue
        cls = await child.read_node_class()
        name = segment((await child.read_browse_name()).Name)
        if cls == ua.NodeClass.Object:
            await _walk(child, [*path, name], depth + 1, out, max_depth)
        elif cls == ua.NodeClass.Variable:
            try:
                vtype = await child.read_data_type_as_variant_type()
            except Exception:  # custom/structured types are not process values
                continue
            if vtype not in _NUMERIC:
                continue
            access = await child.read_attribute(AttributeIds.UserAccessLevel)
            level = int(access.Value.Value) if access.Value is not None else 1
            desc = (await child.read_description()).Text or ""
            out.append(
                {
                    "segments": [*path, name],
                    "node": child.nodeid.to_string(),
                    "dtype": vtype.name,
                    "writable": bool(level & ua.AccessLevel.CurrentWrite.mask),
                    "description": desc,
                    "props": await _props(child),
                }
            )


def _paths(found: list[dict[str, Any]]) -> list[str]:
    segs = [f["segments"] for f in found]
    while segs and all(len(s) > 3 for s in segs) and len({s[0] for s in segs}) == 1:
        segs = [s[1:] for s in segs]
    out = []
    for s in segs:
        if len(s) > 3:
            s = ["_".join(s[:-2]), s[-2], s[-1]]
        out.append("/".join(s))
    return out


async def browse(
    client: Client, root: str | None = None, max_depth: int = 8
) -> list[dict[str, Any]]:
    """Tag specs (``OpcUaTagSpec`` fields) of every process variable under ``root``."""
    start = client.get_node(root) if root else client.nodes.objects
    found: list[dict[str, Any]] = []
    await _walk(start, [], 0, found, max_depth)
    specs = []
    for f, path in zip(found, _paths(found), strict=True):
        props = f["props"]
        spec: dict[str, Any] = {"path": path, "node": f["node"], "dtype": f["dtype"]}
        eu = props.get("EngineeringUnits")
        spec["unit"] = eu.DisplayName.Text if eu is not None and eu.DisplayName.Text else "1"
        rng = props.get("EURange")
        if rng is not None:
            for key, v in (("lo", rng.Low), ("hi", rng.High)):
                if math.isfinite(v) and abs(v) < 1e12:
                    spec[key] = float(v)
        kind = props.get("TagKind")
        spec["kind"] = kind if isinstance(kind, str) else ("MV" if f["writable"] else "CV")
        if f["writable"]:
            spec["writable"] = True
        if f["description"]:
            spec["description"] = f["description"]
        specs.append(spec)
    return specs


async def discover(
    options: OpcUaOptions, *, root: str | None = None, max_depth: int = 8
) -> list[dict[str, Any]]:
    """Connect with ``options`` (security and user as for the connector) and browse."""
    conn = OpcUaConnector(options.model_copy(update={"tags": []}), name="discover")
    client = await conn._make_client()
    await client.connect()
    try:
        return await browse(client, root, max_depth)
    finally:
        await client.disconnect()


def site_dict(
    url: str,
    tags: list[dict[str, Any]],
    *,
    site: str = "site",
    area: str = "area1",
    line: str = "line1",
    connector: str = "opcua",
    period_s: float = 1.0,
    extra_options: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A site-file mapping with one ``opcua`` connector carrying ``tags``."""
    return {
        "site": {"name": site, "area": area, "line": line},
        "connectors": [
            {
                "name": connector,
                "kind": "opcua",
                "prefix": f"{site}/{area}/{line}",
                "period_s": period_s,
                "options": {"url": url, **(extra_options or {}), "tags": tags},
            }
        ],
    }


def site_yaml(data: dict[str, Any]) -> str:
    """YAML text of a discovered site, with a review note on top."""
    n = len(data["connectors"][0]["options"]["tags"])
    head = (
        f"# Discovered from {data['connectors'][0]['options']['url']}: {n} tags.\n"
        "# Review units, ranges and kinds, then add loops, before `autofab run`.\n"
    )
    return head + yaml.safe_dump(data, sort_keys=False, width=100)


__all__ = ["browse", "discover", "segment", "site_dict", "site_yaml"]
