"""SCPI header parsing shared by the simulated SCPI instruments."""

from __future__ import annotations

from collections.abc import Collection, Mapping


def canonical_header(header: str, long_to_short: Mapping[str, str], optional_nodes: Collection[str]) -> str:
    """Reduce a SCPI header to its short form without optional nodes (`MEAS:VOLT?`).

    Each instrument names its own long forms and its own optional nodes (`SOUR`, `IMM`, ...),
    as its programming guide lists them.
    """
    text = header.strip().lstrip(":").upper()
    is_query = text.endswith("?")
    text = text.rstrip("?")
    if text.startswith("*"):
        return text + ("?" if is_query else "")
    nodes = [long_to_short.get(node, node) for node in text.split(":")]
    kept = [node for node in nodes if node not in optional_nodes] or nodes[:1]
    return ":".join(kept) + ("?" if is_query else "")
