"""Exports for other tools: STIX bundles and detection formats (Suricata, Snort, Zeek, RPZ,
MISP, CSV, plain text), streamed with bounded memory, fingerprinted for ETags, audited.

Formats register by name (see :mod:`.registry`); :mod:`.service` runs them.
"""

from __future__ import annotations

from qalqan.interop.exports.base import ExportFormat, Indicator, RenderContext
from qalqan.interop.exports.registry import formats, get_format
from qalqan.interop.exports.service import (
    Export,
    ExportRequest,
    archive,
    object_link,
    parse_request,
    prepare,
    write_files,
)

__all__ = [
    "Export",
    "ExportFormat",
    "ExportRequest",
    "Indicator",
    "RenderContext",
    "archive",
    "formats",
    "get_format",
    "object_link",
    "parse_request",
    "prepare",
    "write_files",
]
