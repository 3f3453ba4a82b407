"""Which Sigma rules apply to which events: log-source routing.

A Sigma rule names the log it was written for (``product``, ``category``, ``service``); an
event does not say which of those it belongs to, so a *router* works it out from the fields a
log reader leaves in the frame. A router that recognizes a frame gives each distinct kind of
row a :class:`RowSource` (its service and categories); a rule then runs only on the rows whose
source its logsource matches, so no rule is evaluated on rows it was not written for.

Routers register in :data:`ROUTERS`. Today there is one, for Windows event logs (frames with
``Channel`` or ``Provider_Name``, and ``EventID``): the channel names the service (the table of
Sigma services and channels is pySigma's, with a few more; the provider stands in for a missing
channel), and Sysmon, Security and PowerShell event ids name the categories, as listed in
:data:`WINDOWS_CATEGORY_EVENTS`. Security 4688 rows are process creations; their fields are
copied under the Sysmon names (``NewProcessName`` → ``Image`` …) so that one compiled rule reads
both.

A frame no router recognizes (a JSON log, a proxy log, …) gets every rule whose fields are all
columns of the frame, whatever its logsource: its reader knows nothing Sigma could route by.
On a Windows frame, only rules for product ``windows`` run; a Windows rule whose category or
service the tables do not route (``file_access``: Sysmon has no such event) matches no Windows
row.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Final, Protocol

import polars as pl
from sigma.pipelines.common import windows_logsource_mapping
from sigma.rule import SigmaLogSource

__all__ = [
    "MORE_CHANNELS",
    "PROCESS_CREATION_FROM_4688",
    "ROUTE",
    "ROUTERS",
    "SERVICE_ALIASES",
    "SYSMON_CHANNEL",
    "WINDOWS_CATEGORY_EVENTS",
    "CategoryEvents",
    "FieldAlias",
    "LogSource",
    "Router",
    "RowGroup",
    "RowSource",
    "WindowsEventLog",
    "route",
]

ROUTE: Final = "@route"
"""The column a router adds to a frame: one value per distinct kind of row."""

SYSMON_CHANNEL: Final = "Microsoft-Windows-Sysmon/Operational"
_SEPARATOR: Final = "\x1f"


@dataclass(frozen=True, slots=True)
class LogSource:
    """A Sigma logsource: what a rule was written for, or what a row comes from."""

    product: str | None = None
    category: str | None = None
    service: str | None = None

    @classmethod
    def of(cls, source: SigmaLogSource) -> LogSource:
        """The logsource of a parsed rule."""
        return cls(source.product, source.category, source.service)

    def __str__(self) -> str:
        return "/".join(part or "*" for part in (self.product, self.category, self.service))


@dataclass(frozen=True, slots=True)
class FieldAlias:
    """A field a row source spells differently: ``target`` is built from ``sources``.

    Several sources are joined with ``joiner``; ``values`` renames known values (integrity
    level SIDs to their names, say). The alias is left out when a source column is missing.
    """

    target: str
    sources: tuple[str, ...]
    joiner: str = ""
    values: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class CategoryEvents:
    """Events of ``service`` with one of ``event_ids`` belong to ``categories``.

    ``event_type_prefix`` narrows the entry to rows whose ``EventType`` starts with it (Sysmon
    12 is a registry delete when its type is ``DeleteKey`` or ``DeleteValue``); the first entry
    that matches a row wins, so narrow entries come before broad ones.
    """

    service: str
    event_ids: tuple[str, ...]
    categories: tuple[str, ...]
    event_type_prefix: str | None = None
    aliases: tuple[FieldAlias, ...] = ()


_INTEGRITY_LEVELS: Final = (
    ("S-1-16-0", "Untrusted"),
    ("S-1-16-4096", "Low"),
    ("S-1-16-8192", "Medium"),
    ("S-1-16-8448", "Medium"),
    ("S-1-16-12288", "High"),
    ("S-1-16-16384", "System"),
    ("S-1-16-20480", "Protected"),
)

PROCESS_CREATION_FROM_4688: Final = (
    FieldAlias("Image", ("NewProcessName",)),
    FieldAlias("ParentImage", ("ParentProcessName",)),
    FieldAlias("User", ("SubjectDomainName", "SubjectUserName"), joiner="\\"),
    FieldAlias("LogonId", ("SubjectLogonId",)),
    FieldAlias("IntegrityLevel", ("MandatoryLabel",), values=_INTEGRITY_LEVELS),
)
"""Security 4688 fields under the names Sysmon process creation rules use."""


def _sysmon(event_ids: str, *categories: str, event_type: str | None = None) -> CategoryEvents:
    return CategoryEvents("sysmon", tuple(event_ids.split()), categories, event_type)


WINDOWS_CATEGORY_EVENTS: Final[tuple[CategoryEvents, ...]] = (
    _sysmon("1", "process_creation"),
    _sysmon("2", "file_change"),
    _sysmon("3", "network_connection"),
    _sysmon("4 16", "sysmon_status"),
    _sysmon("5", "process_termination"),
    _sysmon("6", "driver_load"),
    _sysmon("7", "image_load"),
    _sysmon("8", "create_remote_thread"),
    _sysmon("9", "raw_access_thread"),
    _sysmon("10", "process_access"),
    _sysmon("11", "file_event"),
    _sysmon("12", "registry_delete", "registry_event", event_type="delete"),
    _sysmon("12", "registry_add", "registry_event"),
    _sysmon("13", "registry_set", "registry_event"),
    _sysmon("14", "registry_rename", "registry_event"),
    _sysmon("15", "create_stream_hash"),
    _sysmon("17 18", "pipe_created"),
    _sysmon("19 20 21", "wmi_event"),
    _sysmon("22", "dns_query"),
    _sysmon("23", "file_delete"),
    _sysmon("24", "clipboard_capture"),
    _sysmon("25", "process_tampering"),
    _sysmon("26", "file_delete", "file_delete_detected"),
    _sysmon("27", "file_block_executable"),
    _sysmon("28", "file_block_shredding"),
    _sysmon("29", "file_executable_detected"),
    _sysmon("255", "sysmon_error"),
    CategoryEvents("security", ("4688",), ("process_creation",), None, PROCESS_CREATION_FROM_4688),
    CategoryEvents("powershell", ("4103",), ("ps_module",)),
    CategoryEvents("powershell", ("4104",), ("ps_script",)),
    CategoryEvents("powershell-classic", ("400",), ("ps_classic_start",)),
    CategoryEvents("powershell-classic", ("600",), ("ps_classic_provider_start",)),
    CategoryEvents("powershell-classic", ("800",), ("ps_classic_script",)),
)
"""Windows events that Sigma calls by a category, most specific entries first."""


MORE_CHANNELS: Final = {
    "iis-configuration": "Microsoft-IIS-Configuration/Operational",
    "smbclient-connectivity": "Microsoft-Windows-SmbClient/Connectivity",
    "smbserver-connectivity": "Microsoft-Windows-SMBServer/Connectivity",
}
"""Channels of services SigmaHQ rules use that pySigma's table lacks."""
SERVICE_ALIASES: Final = {"ldap": "ldap_debug"}
"""Services SigmaHQ rules name differently from pySigma's table."""


def _channel_services() -> dict[str, str]:
    services: dict[str, str] = {}
    for service, channels in [*windows_logsource_mapping.items(), *MORE_CHANNELS.items()]:
        for channel in [channels] if isinstance(channels, str) else channels:
            services[channel.lower()] = service
    return services


_CHANNEL_SERVICES: Final = _channel_services()
_PROVIDER_SERVICES: Final = {
    "microsoft-windows-sysmon": "sysmon",
    "microsoft-windows-security-auditing": "security",
    "microsoft-windows-powershell": "powershell",
    "powershell": "powershell-classic",
    "microsoft-windows-taskscheduler": "taskscheduler",
    "microsoft-windows-windows defender": "windefend",
}
"""Services of rows that lack a channel, by provider name."""


@dataclass(frozen=True, slots=True)
class RowSource:
    """Where a kind of row comes from, as Sigma names it."""

    product: str
    service: str | None = None
    categories: frozenset[str] = frozenset()
    aliases: tuple[FieldAlias, ...] = ()

    def serves(self, wanted: LogSource) -> bool:
        """Whether a rule written for ``wanted`` applies to these rows."""
        return (
            wanted.product == self.product
            and (
                wanted.service is None
                or SERVICE_ALIASES.get(wanted.service, wanted.service) == self.service
            )
            and (wanted.category is None or wanted.category in self.categories)
        )


@dataclass(frozen=True, slots=True)
class RowGroup:
    """Rows of a batch and the logsources of the rules that apply to them.

    ``rows`` is a boolean expression over the routed frame, or None for every row.
    """

    rows: pl.Expr | None
    logsources: tuple[LogSource, ...]


class Router(Protocol):
    """Recognizes the frames of one kind of log and routes their rows."""

    def recognizes(self, columns: Collection[str]) -> bool:
        """Whether this router knows where the rows of a frame with these columns come from."""
        ...

    def route(
        self, frame: pl.DataFrame, logsources: Collection[LogSource]
    ) -> tuple[pl.DataFrame, list[RowGroup]]:
        """The frame with :data:`ROUTE` and any aliased fields added, and the groups of rows
        that rules of the given logsources apply to (logsources matching no row are left
        out)."""
        ...


class WindowsEventLog:
    """Routes Windows event log rows by channel, provider, event id and Sysmon event type."""

    _KEYS: Final = ("Channel", "Provider_Name", "EventID", "EventType")

    def recognizes(self, columns: Collection[str]) -> bool:
        """Whether the frame has ``EventID`` and a channel or provider column."""
        return "EventID" in columns and ("Channel" in columns or "Provider_Name" in columns)

    def route(
        self, frame: pl.DataFrame, logsources: Collection[LogSource]
    ) -> tuple[pl.DataFrame, list[RowGroup]]:
        """See :meth:`Router.route`."""
        keys = [pl.col(k).cast(pl.String).fill_null("") for k in self._KEYS if k in frame.columns]
        frame = frame.with_columns(pl.concat_str(keys, separator=_SEPARATOR).alias(ROUTE))
        kinds = frame.get_column(ROUTE).unique().to_list()
        present = [k for k in self._KEYS if k in frame.columns]
        sources = {
            kind: self.source(dict(zip(present, kind.split(_SEPARATOR), strict=True)))
            for kind in kinds
        }
        frame = self._alias(frame, sources)

        by_kinds: dict[frozenset[str], list[LogSource]] = defaultdict(list)
        for wanted in logsources:
            served = frozenset(kind for kind, source in sources.items() if source.serves(wanted))
            if served:
                by_kinds[served].append(wanted)
        everything = frozenset(kinds)
        groups = [
            RowGroup(
                None if served == everything else pl.col(ROUTE).is_in(sorted(served)),
                tuple(wanted),
            )
            for served, wanted in by_kinds.items()
        ]
        return frame, groups

    @staticmethod
    def source(keys: Mapping[str, str]) -> RowSource:
        """The source of rows with these key field values (channel, provider, event id, event
        type; missing ones empty)."""
        channel = keys.get("Channel", "").lower()
        provider = keys.get("Provider_Name", "").lower()
        service = _CHANNEL_SERVICES.get(channel) or (
            _PROVIDER_SERVICES.get(provider) if not channel else None
        )
        event_id = keys.get("EventID", "")
        event_type = keys.get("EventType", "").lower()
        for entry in WINDOWS_CATEGORY_EVENTS:
            if (
                entry.service == service
                and event_id in entry.event_ids
                and (
                    entry.event_type_prefix is None
                    or event_type.startswith(entry.event_type_prefix)
                )
            ):
                return RowSource("windows", service, frozenset(entry.categories), entry.aliases)
        return RowSource("windows", service)

    @staticmethod
    def _alias(frame: pl.DataFrame, sources: Mapping[str, RowSource]) -> pl.DataFrame:
        kinds_by_alias: dict[FieldAlias, list[str]] = defaultdict(list)
        for kind, source in sources.items():
            for alias in source.aliases:
                kinds_by_alias[alias].append(kind)
        columns = []
        for alias, kinds in kinds_by_alias.items():
            if not all(s in frame.columns for s in alias.sources):
                continue
            parts = [pl.col(s).cast(pl.String) for s in alias.sources]
            value = parts[0] if len(parts) == 1 else pl.concat_str(parts, separator=alias.joiner)
            if alias.values:
                value = value.replace(dict(alias.values))
            otherwise = (
                pl.col(alias.target) if alias.target in frame.columns else pl.lit(None, pl.String)
            )
            columns.append(
                pl.when(pl.col(ROUTE).is_in(kinds))
                .then(value)
                .otherwise(otherwise)
                .alias(alias.target)
            )
        return frame.with_columns(columns) if columns else frame


ROUTERS: Final[Sequence[Router]] = (WindowsEventLog(),)
"""Every router, tried in order; the first that recognizes a frame routes it."""


def route(
    frame: pl.DataFrame, logsources: Collection[LogSource]
) -> tuple[pl.DataFrame, list[RowGroup]] | None:
    """Route ``frame`` with the first router that recognizes it, or None if none does."""
    for router in ROUTERS:
        if router.recognizes(frame.columns):
            return router.route(frame, logsources)
    return None
