"""Two-box HA: an active and a standby box, keepalived's virtual IP, PostgreSQL streaming replication.

Box A and box B are the same: whichever holds the virtual IP (VRRP, RFC 5798, as keepalived runs
it) is the active box. It runs the PostgreSQL primary, the engine and the web UI; the other box
runs a hot standby that streams A's WAL, and neither engine nor web UI. keepalived's notify
script does the switch on the box that becomes MASTER: it promotes the local PostgreSQL, then
starts the engine and the web UI; on BACKUP, FAULT or STOP it stops them.

Every file of a box comes from one `HaPair` and the box's name, so the image (`plateau ha write`)
and the test (tests/integration/test_ha_failover.py) run the same configuration:

- ``keepalived.conf``: one VRRP instance, both boxes ``state BACKUP`` with ``nopreempt``, so a box
  that comes back after a failover does not take the address back onto a database that is now
  behind; unicast adverts to the peer only (``check_unicast_src``), since a shared LAN may carry
  other VRRP routers; a track script on the local PostgreSQL, so a box whose database died gives
  the address up (FAULT) and the peer promotes.
- the notify script (POSIX sh).
- the PostgreSQL settings and pg_hba lines, the same on both boxes (either may be primary), and
  the ``pg_basebackup -R`` that makes the standby.
- the engine's database URL: a libpq multi-host URL with the local box first and
  ``target_session_attrs=read-write`` (see `engine_db_url`).
"""
from __future__ import annotations

import dataclasses
import json
import re
import secrets
import shlex
import sys
from dataclasses import asdict, dataclass
from ipaddress import IPv4Address, IPv4Interface
from pathlib import Path
from typing import Any
from urllib.parse import quote

BOXES = ("a", "b")
# Debian's postgresql-15 package; the image installs it (image/packages.list).
DEBIAN_PG_BIN = Path("/usr/lib/postgresql/15/bin")
# Root's own directory: keepalived runs the notify script as root, so neither it nor any directory
# above it may be writable by another user (keepalived's script security checks each one).
HA_DIR = Path("/etc/plateau/ha")
UNITS = ("plateau-engine", "plateau-web")
# Both units (image/systemd/) carry ConditionPathExists=!HA_DIR/keepalived.conf, so an HA box never
# starts them at boot; while it is MASTER a runtime drop-in (in /run, gone at reboot) resets the
# condition and points them at the pair's database and the virtual IP.
RUNTIME_UNITS = Path("/run/systemd/system")
PLATEAU = "/opt/plateau/venv/bin/plateau"
# keepalived's own priorities: the higher one wins when both boxes start at once. With nopreempt
# it does not matter after that.
PRIORITY = {"a": 150, "b": 100}
DATABASE, DB_USER, REPLICATION_USER = "plateau", "plateau", "replicator"
_IFNAME = re.compile(r"^[A-Za-z0-9_.-]{1,15}$")  # IFNAMSIZ - 1, no spaces or slashes
_IDENT = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")  # a PostgreSQL identifier that needs no quoting


class HaConfigError(ValueError):
    """A two-box HA setting is wrong; the message names it."""


@dataclass(frozen=True)
class HaPair:
    """The two boxes, their shared address, and the database they replicate."""

    a: IPv4Address
    b: IPv4Address
    vip: IPv4Interface  # the virtual address phones register to, with its prefix (10.0.0.10/24)
    interface: str = "eth0"  # where the boxes see each other and the phones
    vrid: int = 51  # VRRP virtual router id (RFC 5798 §5.2.3): unique on the LAN
    advert_seconds: int = 1  # the master is declared dead after ~3 missed adverts (§6.1)
    pg_port: int = 5432
    database: str = DATABASE
    db_user: str = DB_USER
    replication_user: str = REPLICATION_USER

    def __post_init__(self) -> None:
        if self.a == self.b:
            raise HaConfigError(f"box a and box b have the same address {self.a}")
        if self.vip.ip in (self.a, self.b):
            raise HaConfigError(f"the virtual IP {self.vip.ip} is a box's own address")
        for name, addr in (("a", self.a), ("b", self.b)):
            if addr not in self.vip.network:
                raise HaConfigError(f"box {name} ({addr}) is not in the virtual IP's network {self.vip.network}")
        if not _IFNAME.match(self.interface):
            raise HaConfigError(f"interface {self.interface!r} is not a network interface name")
        if not 1 <= self.vrid <= 255:
            raise HaConfigError(f"vrid {self.vrid} is not 1-255 (RFC 5798 §5.2.3)")
        if not 1 <= self.advert_seconds <= 40:
            raise HaConfigError(f"advert_seconds {self.advert_seconds} is not 1-40")
        if not 1 <= self.pg_port <= 65535:
            raise HaConfigError(f"pg_port {self.pg_port} is not a port number")
        for field in ("database", "db_user", "replication_user"):
            if not _IDENT.match(getattr(self, field)):
                raise HaConfigError(f"{field} {getattr(self, field)!r} is not a plain lower-case identifier")

    def address(self, box: str) -> IPv4Address:
        """The own address of box "a" or "b"."""
        if box not in BOXES:
            raise HaConfigError(f"box {box!r} is not 'a' or 'b'")
        return self.a if box == "a" else self.b

    def peer(self, box: str) -> IPv4Address:
        """The other box's address."""
        return self.address("b" if box == "a" else "a") if box in BOXES else self.address(box)

    def application_name(self, box: str) -> str:
        """The name box `box`'s standby streams under (pg_stat_replication.application_name)."""
        self.address(box)
        return f"plateau_{box}"


@dataclass(frozen=True)
class HaSecrets:
    """The passwords both boxes share: made once, copied to the peer with the settings."""

    db_password: str
    replication_password: str

    @staticmethod
    def new() -> HaSecrets:
        return HaSecrets(secrets.token_urlsafe(24), secrets.token_urlsafe(24))

    @staticmethod
    def load(path: Path) -> HaSecrets:
        """Read a secrets file `save` wrote; a clear error if it is not one."""
        try:
            raw = json.loads(path.read_text())
            return HaSecrets(str(raw["db_password"]), str(raw["replication_password"]))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise HaConfigError(f"{path}: not a Plateau HA secrets file ({exc})") from exc

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self)) + "\n")
        path.chmod(0o600)


@dataclass(frozen=True)
class BoxCommands:
    """What the notify script of one box runs: where its PostgreSQL lives, how services start."""

    pg_data: Path
    start_services: str  # shell lines: start the engine and the web UI
    stop_services: str
    pg_bin: Path = DEBIAN_PG_BIN
    pg_user: str = "postgres"  # pg_ctl runs as this user (keepalived runs the script as root)
    log_file: Path = Path("/var/log/plateau-ha.log")


def keepalived_conf(pair: HaPair, box: str, notify: Path, pg_bin: Path = DEBIAN_PG_BIN) -> str:
    """keepalived.conf of `box`: one VRRP instance holding the virtual IP."""
    me, peer = pair.address(box), pair.peer(box)
    # As the engine's role: the probe is an unauthenticated start-up packet, but one naming a role
    # that does not exist (root's) makes the server log a FATAL line every second.
    check = f"{pg_bin / 'pg_isready'} -q -h 127.0.0.1 -p {pair.pg_port} -U {pair.db_user} -d {pair.database}"
    return f"""\
# Generated by `plateau ha write` (appliance/cluster/ha.py) for box {box}: edit the pair, not this file.
global_defs {{
    router_id plateau_{box}
    script_user root
    enable_script_security
}}

# A box whose own PostgreSQL stopped answering gives the address up (FAULT), so the peer promotes.
vrrp_script plateau_postgres {{
    script "{check}"
    interval 1
    fall 3
    rise 2
}}

vrrp_instance plateau {{
    # Both boxes start as BACKUP and never preempt: a box that comes back after a failover stays
    # standby, its database behind the promoted one, until it is joined again as a standby.
    state BACKUP
    nopreempt
    interface {pair.interface}
    virtual_router_id {pair.vrid}
    priority {PRIORITY[box]}
    advert_int {pair.advert_seconds}
    unicast_src_ip {me}
    unicast_peer {{
        {peer}
    }}
    check_unicast_src
    virtual_ipaddress {{
        {pair.vip.with_prefixlen} dev {pair.interface}
    }}
    track_script {{
        plateau_postgres
    }}
    notify "{notify}"
}}
"""


def notify_script(pair: HaPair, box: str, commands: BoxCommands) -> str:
    """The script keepalived runs on each state change of `box` (arguments: TYPE NAME STATE PRIORITY)."""
    pair.address(box)
    pg_ctl = shlex.quote(str(commands.pg_bin / "pg_ctl"))
    as_pg = f"runuser -u {shlex.quote(commands.pg_user)} -- " if commands.pg_user else ""
    data = shlex.quote(str(commands.pg_data))
    log = shlex.quote(str(commands.log_file))
    return f"""\
#!/bin/sh
# Generated by `plateau ha write` (appliance/cluster/ha.py) for box {box} of the pair
# a={pair.a} b={pair.b} vip={pair.vip.with_prefixlen}. keepalived runs it as root on every VRRP
# state change, with the arguments TYPE NAME STATE PRIORITY.
set -u
state="${{3:-}}"
log() {{ echo "$(date -u +%FT%TZ) plateau-ha box {box}: $*" >> {log}; }}
log "VRRP state $state"
case "$state" in
MASTER)
    # Promote before starting the engine: it opens its database with
    # target_session_attrs=read-write and would not accept a standby. standby.signal exists
    # exactly while the server is a standby (pg_basebackup -R writes it, promotion removes it).
    if [ -f {data}/standby.signal ]; then
        log "promoting the local PostgreSQL"
        {as_pg}{pg_ctl} promote -D {data} -w -t 60 >> {log} 2>&1 || {{ log "promotion failed"; exit 1; }}
    fi
    log "starting the engine"
    {{ {commands.start_services}; }} >> {log} 2>&1
    ;;
BACKUP|FAULT|STOP)
    log "stopping the engine"
    {{ {commands.stop_services}; }} >> {log} 2>&1
    ;;
esac
exit 0
"""


def postgres_settings(pair: HaPair, box: str) -> dict[str, str]:
    """postgresql.conf settings of `box`, as a primary or as a standby (the same either way)."""
    return {
        "listen_addresses": f"'127.0.0.1,{pair.address(box)}'",
        "port": str(pair.pg_port),
        "wal_level": "replica",
        "max_wal_senders": "5",
        # Keep WAL for a standby that was away a while, rather than make it start over.
        "wal_keep_size": "'1GB'",
        "hot_standby": "on",
        "hot_standby_feedback": "on",
        # pg_rewind needs it to bring a failed primary back as a standby of the promoted one.
        "wal_log_hints": "on",
    }


def postgres_conf(pair: HaPair, box: str) -> str:
    """`postgres_settings` as a postgresql.conf include file."""
    lines = [f"# Generated by `plateau ha write` for box {box}: include it from postgresql.conf."]
    lines += [f"{name} = {value}" for name, value in postgres_settings(pair, box).items()]
    return "\n".join(lines) + "\n"


def hba_lines(pair: HaPair) -> list[str]:
    """pg_hba.conf lines: the peer may stream WAL and either box's engine may use the database."""
    out = []
    for addr in (pair.a, pair.b):
        out.append(f"host replication {pair.replication_user} {addr}/32 scram-sha-256")
        out.append(f"host {pair.database} {pair.db_user} {addr}/32 scram-sha-256")
    return out


def basebackup_argv(pair: HaPair, box: str, pg_data: Path, ha_secrets: HaSecrets,
                    pg_bin: Path = DEBIAN_PG_BIN) -> list[str]:
    """pg_basebackup that makes `box`'s standby from the peer's primary (-R: standby.signal and
    primary_conninfo written into the copy, so it starts streaming)."""
    conninfo = (f"host={pair.peer(box)} port={pair.pg_port} user={pair.replication_user} "
                f"password={ha_secrets.replication_password} application_name={pair.application_name(box)}")
    return [str(pg_bin / "pg_basebackup"), "-D", str(pg_data), "-d", conninfo, "-R",
            "-X", "stream", "-c", "fast"]


def engine_db_url(pair: HaPair, box: str, ha_secrets: HaSecrets) -> str:
    """The engine's $PLATEAU_DB on `box`: both boxes, the local one first, read-write only.

    Not the virtual IP: during a switch the address can move before the promotion has finished,
    and an engine reaching a standby through it would fail its first write. libpq's
    ``target_session_attrs=read-write`` (PostgreSQL 10+) tries each host in turn and takes only a
    server that accepts writes, so the engine never opens a standby; the local host first keeps
    the engine on its own box's database once it is promoted, and a box that came back as a stale
    primary is not preferred by the other box's engine.
    """
    hosts = ",".join(f"{addr}:{pair.pg_port}" for addr in (pair.address(box), pair.peer(box)))
    return (f"postgresql://{pair.db_user}:{quote(ha_secrets.db_password, safe='')}@{hosts}/{pair.database}"
            "?target_session_attrs=read-write&connect_timeout=3")


def systemd_commands(ha_dir: Path = HA_DIR) -> tuple[str, str]:
    """The notify script's start and stop lines on the image: runtime drop-ins, then systemctl."""
    units = " ".join(f"{u}.service" for u in UNITS)
    install = "; ".join(
        f"mkdir -p {RUNTIME_UNITS}/{u}.service.d && cp {shlex.quote(str(ha_dir / f'{u}.ha.conf'))} "
        f"{RUNTIME_UNITS}/{u}.service.d/plateau-ha.conf" for u in UNITS)
    remove = " ".join(f"{RUNTIME_UNITS}/{u}.service.d/plateau-ha.conf" for u in UNITS)
    return (f"{install}; systemctl daemon-reload; systemctl start {units}",
            f"systemctl stop {units}; rm -f {remove}; systemctl daemon-reload")


def unit_dropin(pair: HaPair, unit: str, environment: Path) -> str:
    """The runtime drop-in of `unit` on the MASTER box (see RUNTIME_UNITS)."""
    lines = [f"# Generated by `plateau ha write`: {unit} on the MASTER box of the pair (vip {pair.vip.ip}).",
             "[Unit]", "ConditionPathExists=", "[Service]", f"EnvironmentFile={environment}"]
    if unit == "plateau-engine":
        # SIP on the virtual IP the phones register to, not the box's own address (--sip-ip auto).
        lines += ["ExecStart=", f"ExecStart={PLATEAU} run --data-dir /var/lib/plateau --sip-ip {pair.vip.ip} "
                  "--sip-port 5060 --no-demo"]
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class BoxFiles:
    """Where `write_box` put each file of a box."""

    keepalived: Path
    notify: Path
    postgres: Path
    hba: Path
    environment: Path
    dropins: tuple[Path, ...]


def write_box(pair: HaPair, box: str, out: Path, ha_secrets: HaSecrets, commands: BoxCommands) -> BoxFiles:
    """Write every file of `box` into `out`: keepalived.conf, the notify script, the PostgreSQL
    include file and pg_hba lines, and the engine's environment file (PLATEAU_DB, PLATEAU_NODE)."""
    out.mkdir(parents=True, exist_ok=True)
    files = BoxFiles(out / "keepalived.conf", out / "plateau-ha-notify", out / "postgresql-ha.conf",
                     out / "pg_hba-ha.conf", out / "plateau-ha.env", tuple(out / f"{u}.ha.conf" for u in UNITS))
    files.notify.write_text(notify_script(pair, box, commands))
    files.notify.chmod(0o700)  # keepalived's script security refuses a script others may write
    files.keepalived.write_text(keepalived_conf(pair, box, files.notify, commands.pg_bin))
    files.postgres.write_text(postgres_conf(pair, box))
    files.hba.write_text("\n".join(hba_lines(pair)) + "\n")
    files.environment.write_text(f"PLATEAU_DB={engine_db_url(pair, box, ha_secrets)}\nPLATEAU_NODE={box}\n")
    files.environment.chmod(0o640)  # it holds the database password (root:plateau on the image)
    for unit, path in zip(UNITS, files.dropins):
        path.write_text(unit_dropin(pair, unit, files.environment))
    return files


# -- `plateau ha`: the same files on a real box -------------------------------------------------
DEFAULT_OUT = HA_DIR
DEFAULT_PG_DATA = Path("/var/lib/postgresql/15/main")


def pair_from_args(args: Any) -> HaPair:
    """The pair named on the command line; `HaConfigError` names a bad value."""
    def parse(option: str, text: str, kind: type[IPv4Address] | type[IPv4Interface]) -> Any:
        try:
            return kind(text)
        except ValueError as exc:  # ipaddress's own message says what is wrong with the text
            raise HaConfigError(f"--{option} {text}: {exc}") from exc

    return HaPair(a=parse("a", args.a, IPv4Address), b=parse("b", args.b, IPv4Address),
                  vip=parse("vip", args.vip, IPv4Interface), interface=args.interface, vrid=args.vrid)


def write_command(args: Any) -> int:
    """`plateau ha write`: the files of this box, and the steps that remain, printed."""
    try:
        pair = pair_from_args(args)
        secrets_file: Path = args.secrets or args.out / "ha-secrets.json"
        if secrets_file.exists():
            ha_secrets = HaSecrets.load(secrets_file)
        elif args.box == "a":
            args.out.mkdir(parents=True, exist_ok=True)
            ha_secrets = HaSecrets.new()
            ha_secrets.save(secrets_file)
        else:
            raise HaConfigError(f"{secrets_file} is missing: copy it from box a (plateau ha write --box a made it)")
        start, stop = systemd_commands(args.out)
        files = write_box(pair, args.box, args.out, ha_secrets,
                          BoxCommands(pg_data=args.pg_data, start_services=start, stop_services=stop))
    except (HaConfigError, OSError) as exc:
        print(f"plateau ha: {exc}", file=sys.stderr)
        return 1
    print(f"plateau ha: box {args.box} of a={pair.a} b={pair.b} vip={pair.vip.with_prefixlen}: "
          f"wrote {', '.join(str(getattr(files, f.name)) for f in dataclasses.fields(files))}")
    steps = [f"include {files.postgres} from postgresql.conf and append {files.hba} to pg_hba.conf;"
             " systemctl restart postgresql",
             f"ln -sf {files.keepalived} /etc/keepalived/keepalived.conf; systemctl enable --now keepalived"
             " (from now on the engine and the web UI run only while this box holds the virtual IP)"]
    backup = " ".join(shlex.quote(a) for a in basebackup_argv(pair, args.box, args.pg_data, ha_secrets))
    if args.box == "a":
        steps.insert(1, f"runuser -u postgres -- plateau ha prepare-primary --secrets {secrets_file}")
        steps.append(f"copy {secrets_file} to box b")
    else:
        steps.insert(1, f"stop PostgreSQL, empty its data directory, then as postgres: {backup}")
    for n, step in enumerate(steps, 1):
        print(f"  {n}. {step}")
    # nopreempt keeps a returning box standby; its database is behind and must be copied again.
    print(f"After a failover, this box rejoins as the other's standby: stop PostgreSQL, empty {args.pg_data},"
          f" then as postgres: {backup}")
    return 0


def prepare_primary_command(args: Any) -> int:
    """`plateau ha prepare-primary`: the engine's and the standby's roles on box a's PostgreSQL."""
    import psycopg

    from appliance.store.replication import prepare_primary

    try:
        ha_secrets = HaSecrets.load(args.secrets)
        prepare_primary(args.db, database=DATABASE, db_user=DB_USER, db_password=ha_secrets.db_password,
                        replication_user=REPLICATION_USER, replication_password=ha_secrets.replication_password)
    except HaConfigError as exc:
        print(f"plateau ha: {exc}", file=sys.stderr)
        return 1
    except psycopg.Error as exc:  # the server's own message says what went wrong
        print(f"plateau ha: cannot prepare the primary: {str(exc).strip()}", file=sys.stderr)
        return 1
    print(f"plateau ha: roles {DB_USER} and {REPLICATION_USER} and database {DATABASE} ready")
    return 0


def add_parser(sub: Any) -> None:
    """`plateau ha write|prepare-primary` on the CLI's sub-parsers."""
    h = sub.add_parser("ha", help="two-box HA (keepalived + PostgreSQL replication): write this box's files")
    h_sub = h.add_subparsers(dest="ha_command", required=True)
    w = h_sub.add_parser("write", help="write keepalived.conf, the notify script, PostgreSQL and engine settings")
    w.add_argument("--box", choices=BOXES, required=True, help="which box this is")
    w.add_argument("--a", required=True, metavar="IP", help="box a's own address")
    w.add_argument("--b", required=True, metavar="IP", help="box b's own address")
    w.add_argument("--vip", required=True, metavar="IP/PREFIX", help="the virtual address phones register to")
    w.add_argument("--interface", default="eth0", help="the interface on the boxes' LAN (default eth0)")
    w.add_argument("--vrid", type=int, default=51, help="VRRP virtual router id, unique on the LAN (default 51)")
    w.add_argument("--pg-data", type=Path, default=DEFAULT_PG_DATA,
                   help=f"PostgreSQL's data directory (default {DEFAULT_PG_DATA})")
    w.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"where the files go (default {DEFAULT_OUT})")
    w.add_argument("--secrets", type=Path, help="the pair's passwords (default OUT/ha-secrets.json; made on box a)")
    p = h_sub.add_parser("prepare-primary", help="create the engine's and the standby's roles on box a")
    p.add_argument("--secrets", type=Path, required=True, help="the ha-secrets.json `plateau ha write` made")
    p.add_argument("--db", default="postgresql:///postgres", metavar="URL",
                   help="a superuser connection (default: the local socket, as the user running this)")


def cli(args: Any) -> int:
    """Run `plateau ha ...`."""
    if args.ha_command == "write":
        return write_command(args)
    return prepare_primary_command(args)
