"""`plateau` command line: run the engine, show its status, move its configuration as YAML."""
from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import sys
from pathlib import Path
from typing import Any

DEFAULT_DATA_DIR = Path(os.environ.get("PLATEAU_DATA_DIR", "data"))
_DB_HELP = ("the database: a PostgreSQL URL (postgresql://user@host/db), sqlite:///PATH or a file path; "
            "default $PLATEAU_DB, else DATA_DIR/plateau.db")


_SHARED_HELP = ("where recordings/ and voicemail/ live: a directory every engine of the site reaches "
                "(a network share); default $PLATEAU_SHARED_DIR, else DATA_DIR")


def _database(args: argparse.Namespace) -> str | Path:
    """What `Store` opens for a command: --db, else $PLATEAU_DB, else the data directory's SQLite file."""
    return args.db or os.environ.get("PLATEAU_DB") or args.data_dir / "plateau.db"


def _shared_dir(args: argparse.Namespace) -> Path:
    """Where recordings/ and voicemail/ live: --shared-dir, else $PLATEAU_SHARED_DIR, else the data dir."""
    chosen = args.shared_dir or os.environ.get("PLATEAU_SHARED_DIR")
    return Path(chosen) if chosen else args.data_dir


def _add_site_options(parser: argparse.ArgumentParser) -> None:
    """--db and --shared-dir: the site's database and the files every engine of the site reaches."""
    parser.add_argument("--db", metavar="URL", help=_DB_HELP)
    parser.add_argument("--shared-dir", type=Path, metavar="DIR", help=_SHARED_HELP)


def _port(text: str) -> int:
    value = int(text)
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"{text} is not a port number")
    return value


def _front_doors(text: str) -> tuple[str, ...]:
    from appliance.sip.front_door import parse_addresses

    try:
        return parse_addresses(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def _host_port(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise argparse.ArgumentTypeError(f"{text!r} is not HOST:PORT")
    return host.strip("[]"), int(port)


def _port_range(text: str) -> tuple[int, int]:
    try:
        lo_s, hi_s = text.split("-", 1)
        lo, hi = int(lo_s), int(hi_s)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r} is not a range like 20000-29999") from exc
    if not (1024 <= lo < hi <= 65535) or hi - lo < 16:
        raise argparse.ArgumentTypeError(f"{text}: need 1024 <= low < high <= 65535 with room for 8 calls")
    return lo, hi


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="plateau", description="Plateau call-centre appliance")
    sub = p.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run the engine in the foreground")
    run.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    _add_site_options(run)
    run.add_argument("--node", default=os.environ.get("PLATEAU_NODE") or socket.gethostname(),
                     help="this engine's name among the engines of one site (default $PLATEAU_NODE, "
                          "else the host name)")
    run.add_argument("--front-door", type=_front_doors, default=(), metavar="IP[,IP]",
                     help="the site's SIP front doors (Kamailio): their X-Plateau-Source header names the "
                          "sender the scanner guard counts; trusted from these addresses only")
    run.add_argument("--outbound-proxy", type=_host_port, default=None, metavar="IP:PORT",
                     help="send calls to trunks through the site's front door (Kamailio), so carriers "
                          "see its address only")
    run.add_argument("--sip-ip", default="127.0.0.1",
                     help="address for SIP and RTP (default 127.0.0.1); 'auto': the default route's source address")
    run.add_argument("--sip-port", type=_port, default=5060)
    run.add_argument("--api-port", type=_port, default=5080, help="control API port on 127.0.0.1 (0: any)")
    run.add_argument("--rtp-ports", type=_port_range, default=(20000, 29999))
    run.add_argument("--tone-country", choices=("FR", "UK", "US"), default="FR")
    run.add_argument("--digest-algorithms", default="SHA-256,MD5",
                     help="digest challenges offered, in order (RFC 8760 puts SHA-256 first; "
                          "old phones that read only the first challenge may need MD5 first)")
    run.add_argument("--block-after", type=int, default=10, metavar="N",
                     help="block a source address after N failed authentications within 60 s")
    run.add_argument("--block-seconds", type=float, default=900.0,
                     help="how long a blocked address stays blocked (default 900)")
    run.add_argument("--rtp-timeout", type=float, default=60.0, metavar="SECONDS",
                     help="release an answered call whose far end sent no RTP for this long (default 60)")
    run.add_argument("--no-demo", action="store_true", help="do not create the demo extensions")
    run.add_argument("-v", "--verbose", action="store_true")

    web = sub.add_parser("web", help="run the web UI (gunicorn) in the foreground")
    web.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    _add_site_options(web)
    web.add_argument("--bind", default="127.0.0.1:8080", help="address:port (default 127.0.0.1:8080)")
    web.add_argument("--certfile", type=Path, help="TLS certificate (PEM): serve HTTPS (with --keyfile)")
    web.add_argument("--keyfile", type=Path, help="TLS private key (PEM) of --certfile")

    st = sub.add_parser("status", help="show the running engine's state")
    st.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    st.add_argument("--json", action="store_true")
    st.add_argument("--db", metavar="URL", help="also show the site's registrations from this database "
                    "(a PostgreSQL URL shared by several engines; default $PLATEAU_DB)")

    cfg = sub.add_parser("config", help="export or import the whole configuration as YAML")
    cfg_sub = cfg.add_subparsers(dest="action", required=True)
    exp = cfg_sub.add_parser("export")
    exp.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    exp.add_argument("--db", metavar="URL", help=_DB_HELP)
    exp.add_argument("-o", "--output", type=Path)
    imp = cfg_sub.add_parser("import")
    imp.add_argument("file", type=Path)
    imp.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    imp.add_argument("--db", metavar="URL", help=_DB_HELP)
    ivr = sub.add_parser("ivr", help="IVR flows")
    ivr_sub = ivr.add_subparsers(dest="action", required=True)
    sim = ivr_sub.add_parser("simulate", help="walk a flow without a call: FLOW --digits 1,2 --caller +33...",
                             add_help=False)
    sim.add_argument("args", nargs=argparse.REMAINDER)

    lt = sub.add_parser("linetest", help="test call: tone, RTCP jitter/loss, round trip, E-model MOS")
    lt.add_argument("target", help="extension, trunk number or sip: URI to call")
    lt.add_argument("--server", metavar="HOST:PORT", help="the PBX (registrar and proxy)")
    lt.add_argument("--user", metavar="EXT", help="register as this extension first")
    lt.add_argument("--password", default="", help="SIP password of --user")
    lt.add_argument("--seconds", type=float, default=5.0, help="how long to play the tone (default 5)")
    lt.add_argument("--tone", type=float, default=1000.0, metavar="HZ", help="tone frequency (default 1000)")
    lt.add_argument("--expect-echo", action="store_true",
                    help="the target loops audio back: FAIL (exit 1) unless the tone returns")
    lt.add_argument("--codecs", default="PCMU,PCMA", help="offered codecs in order (PCMU, PCMA, G722)")
    lt.add_argument("--log-level", type=int, default=0, help="pjsua2 log level on stderr (0-6)")
    _add_update_parser(sub)
    _add_firstboot_parser(sub)
    _add_health_parser(sub)
    _add_backup_parser(sub)
    _add_ha_parser(sub)
    from appliance.report_cli import add_parser as add_report_parser

    add_report_parser(sub, DEFAULT_DATA_DIR, _DB_HELP)
    return p


def cmd_run(args: argparse.Namespace) -> int:
    from appliance.engine import Engine, EngineOptions
    from appliance.store.db import Store
    from appliance.store.demo import DEMO_FLOW_FILE, notice, seed_demo
    from appliance.store.errors import StoreError
    from appliance.system.systemd import setup_logging

    from appliance.system.netaddr import NoAddressError, resolve_sip_ip

    setup_logging(args.verbose)
    try:
        args.sip_ip = resolve_sip_ip(args.sip_ip)
    except NoAddressError as exc:
        print(f"plateau: cannot start: {exc}", file=sys.stderr)
        return 1
    args.data_dir.mkdir(parents=True, exist_ok=True)
    db = _database(args)
    if not args.no_demo:
        try:
            store = Store(db)
        except StoreError as exc:
            print(f"plateau: cannot start: {exc}", file=sys.stderr)
            return 1
        try:
            created = seed_demo(store)
        finally:
            store.close()
        if created:
            flows = args.data_dir / "flows"
            flows.mkdir(exist_ok=True)
            shutil.copyfile(DEMO_FLOW_FILE, flows / DEMO_FLOW_FILE.name)
            print("\n".join(notice(created, f"{args.sip_ip}:{args.sip_port}")))
    opts = EngineOptions(args.data_dir, args.sip_ip, args.sip_port, args.api_port,
                         args.rtp_ports[0], args.rtp_ports[1], tone_country=args.tone_country,
                         block_failures=args.block_after, block_seconds=args.block_seconds,
                         rtp_timeout=args.rtp_timeout, db=str(db), node=args.node,
                         shared_dir=_shared_dir(args),
                         front_doors=args.front_door, outbound_proxy=args.outbound_proxy,
                         digest_algorithms=tuple(a.strip() for a in args.digest_algorithms.split(",")))
    try:
        engine = Engine(opts)
    except (OSError, ValueError, StoreError) as exc:
        print(f"plateau: cannot start: {exc}", file=sys.stderr)
        return 1
    return engine.run()


def cmd_status(args: argparse.Namespace) -> int:
    from appliance.api.client import ControlApiClient
    from appliance.api.facade import ApiError

    try:
        client = ControlApiClient.from_data_dir(args.data_dir)
        status = client.status()
        regs = client.registrations()
        calls = client.calls()
    except (ApiError, OSError) as exc:
        print(f"plateau: engine not reachable ({exc}); is `plateau run --data-dir {args.data_dir}` running?",
              file=sys.stderr)
        return 1
    site = _site_status(args)
    if isinstance(site, int):
        return site
    if args.json:
        out = {"status": status, "registrations": regs, "calls": calls}
        print(json.dumps(out if site is None else {**out, "site": site}, indent=2))
        return 0
    sip = status.get("sip", {})
    print(f"Plateau {status.get('version')}  up {status.get('uptime')} s  "
          f"SIP {sip.get('address')}:{sip.get('port')}")
    print(f"calls {status.get('calls')}  channels {status.get('channels')}  "
          f"registrations {status.get('registrations')}  blocked {status.get('blocked')}")
    for t in status.get("trunks", []):
        expiry = f", expires in {t['expires_in']} s" if t.get("expires_in") else ""
        print(f"  trunk {t['name']}: {t['state']}{expiry}{' (' + t['detail'] + ')' if t.get('detail') else ''}")
    for r in regs:
        print(f"  {r['aor']:>6}  {r['contact']}  via {r['transport']} {r['source']}  expires in {r['expires_in']} s")
    for c in calls:
        print(f"  {c['id']}: {c['caller']} -> {c['dialed']} [{c['state']}]")
    if site is not None:
        print(f"site {site['database']}: {len(site['registrations'])} registrations")
        for r in site["registrations"]:
            print(f"  {r['aor']:>6}  {r['contact']}  via {r['transport']} {r['source']}  "
                  f"expires in {r['expires_in']} s")
    return 0


def _site_status(args: argparse.Namespace) -> dict[str, Any] | int | None:
    """The site's registrations from --db / $PLATEAU_DB (every engine's phones); None without a
    database named, or 1 (the exit code) when it cannot be opened."""
    import time

    from appliance.store.db import Store
    from appliance.store.errors import StoreError

    target = args.db or os.environ.get("PLATEAU_DB")
    if not target:
        return None
    try:
        with Store(target) as store:
            now = time.time()
            return {"database": store.location, "registrations": [
                {"aor": r.aor, "contact": r.contact, "transport": r.transport,
                 "source": f"{r.source_host}:{r.source_port}", "expires_in": int(r.expires_at - now)}
                for r in store.registrations(now)]}
    except StoreError as exc:
        print(f"plateau: {exc}", file=sys.stderr)
        return 1


def cmd_config(args: argparse.Namespace) -> int:
    from appliance.ivr.flow import published_flow_names
    from appliance.store.config_yaml import export_config, import_config
    from appliance.store.db import Store
    from appliance.store.errors import ConfigError, StoreError

    if args.action == "export":
        try:
            store = Store(_database(args))
        except StoreError as exc:
            print(f"plateau: {exc}", file=sys.stderr)
            return 1
        try:
            text = export_config(store)
        finally:
            store.close()
        if args.output:
            args.output.write_text(text)
        else:
            sys.stdout.write(text)
        return 0
    try:
        text = args.file.read_text()
    except OSError as exc:
        print(f"plateau: cannot read {args.file}: {exc}", file=sys.stderr)
        return 2
    args.data_dir.mkdir(parents=True, exist_ok=True)
    try:
        store = Store(_database(args))
    except StoreError as exc:
        print(f"plateau: configuration not imported: {exc}", file=sys.stderr)
        return 1
    try:
        # The flows beside the database: an inbound route to ivr:<flow> must name a published one.
        report = import_config(store, text, published_flow_names(args.data_dir / "flows"))
    except ConfigError as exc:
        print(f"plateau: configuration not imported, nothing changed: {exc}", file=sys.stderr)
        return 2
    finally:
        store.close()
    print(f"imported {report}")
    _reload_running_engine(args.data_dir)
    return 0


def _reload_running_engine(data_dir: Path) -> None:
    """Tell a running engine to take the new configuration (calls in progress are kept)."""
    if not (data_dir / "api.json").exists():
        return
    from appliance.api.client import ControlApiClient
    from appliance.api.facade import ApiError

    try:
        ControlApiClient.from_data_dir(data_dir).reload()
        print("running engine reloaded")
    except (ApiError, OSError, AttributeError) as exc:
        print(f"note: the running engine did not reload ({exc}); restart it to apply", file=sys.stderr)


def cmd_web(args: argparse.Namespace) -> int:
    from web.server import serve

    args.data_dir.mkdir(parents=True, exist_ok=True)
    return serve(args.data_dir, args.bind, certfile=args.certfile, keyfile=args.keyfile,
                 db=str(_database(args)), shared_dir=_shared_dir(args))


def cmd_linetest(args: argparse.Namespace) -> int:
    from appliance.linetest import cli

    return cli(args)


def _add_firstboot_parser(sub: argparse._SubParsersAction) -> None:
    fb = sub.add_parser("firstboot", help="first-boot setup: TLS certificate, first web admin (idempotent)")
    fb.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    fb.add_argument("--db", metavar="URL", help=_DB_HELP)
    fb.add_argument("--hostname", help="name for the certificate (default: this host's name)")


def cmd_firstboot(args: argparse.Namespace) -> int:
    from appliance.store.errors import StoreError
    from appliance.system.firstboot import FirstbootError, run_firstboot

    try:
        report = run_firstboot(args.data_dir, hostname=args.hostname, db=_database(args))
    except (FirstbootError, OSError, StoreError) as exc:
        print(f"plateau firstboot: {exc}", file=sys.stderr)
        return 1
    if report.already_done:
        print(f"plateau firstboot: already done ({report.directory / 'done'}); nothing changed")
        return 0
    print(f"plateau firstboot: created {', '.join(report.created)} in {report.directory}")
    if report.admin_password is not None:
        print("Plateau web administration: https://<this box>/  user admin, one-time password "
              f"{report.admin_password} (you choose your own at first login; also in "
              f"{report.directory / 'admin-password'})", flush=True)
    return 0


def _add_health_parser(sub: argparse._SubParsersAction) -> None:
    h = sub.add_parser("health", help="exit 0 when the engine answers its control API and a SIP OPTIONS")
    h.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    h.add_argument("--wait", type=float, default=0.0, metavar="SECONDS",
                   help="keep trying for this long before declaring the engine unhealthy (default 0: once)")


def cmd_health(args: argparse.Namespace) -> int:
    from appliance.system.health import wait_healthy

    report = wait_healthy(args.data_dir, args.wait)
    word = "healthy" if report.healthy else "NOT healthy"
    print(f"plateau health: {word} after {report.waited:.1f} s: {report.reason}", flush=True)
    return 0 if report.healthy else 1


def _add_update_parser(sub: argparse._SubParsersAction) -> None:
    from appliance.system import update as upd

    up = sub.add_parser("update", help="write an update bundle to the inactive root slot, or check one after boot",
                        description="plateau update IMAGE | --status | --after-boot")
    up.add_argument("image", nargs="?", type=Path, help="the plateau-<version>.update bundle")
    up.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    up.add_argument("--status", action="store_true", help="show slots, boot entries, pending update, history")
    up.add_argument("--after-boot", action="store_true",
                    help="confirm or roll back the pending update (run by plateau-update-check.service)")
    up.add_argument("--json", action="store_true", help="with --status: machine-readable output")
    up.add_argument("--esp", type=Path, default=upd.DEFAULT_ESP, help="where the ESP is mounted (/boot/efi)")
    up.add_argument("--data-dir", type=Path, default=upd.DEFAULT_DATA_DIR, help="data partition (/var/lib/plateau)")
    up.add_argument("--cmdline", help="kernel command line to use instead of /proc/cmdline")
    up.add_argument("--slot-device", default=upd.DEFAULT_SLOT_DEVICE,
                    help="slot device, {slot} replaced by a or b (default %(default)s)")
    up.add_argument("--key", type=Path, action="append", metavar="PEM",
                    help="update public key (repeatable; default /etc/plateau/update-key.pub and "
                         "<data-dir>/update-key.pub); any existing key makes a signature required")
    up.add_argument("--require-signature", action="store_true", help="refuse unsigned bundles even with no key")


def cmd_update(args: argparse.Namespace) -> int:
    import dataclasses

    from appliance.system import update as upd

    modes = [bool(args.image), args.status, args.after_boot]
    if sum(modes) != 1:
        print("plateau update: give exactly one of IMAGE, --status, --after-boot", file=sys.stderr)
        return 2
    paths = upd.UpdatePaths(esp=args.esp, data_dir=args.data_dir, slot_device=args.slot_device,
                            key_paths=tuple(args.key) if args.key else None)
    cmdline = args.cmdline if args.cmdline is not None else upd.read_cmdline()
    try:
        if args.status:
            st = upd.status(cmdline, paths)
            if args.json:
                print(json.dumps(dataclasses.asdict(st), indent=2, default=str))
                return 0
            print(f"running slot: {st.running.value if st.running else 'unknown'}")
            for i, e in enumerate(st.entries):
                print(f"  {'*' if i == 0 else ' '} {e['file']:<24} slot {e['slot'] or '-'}  "
                      f"version {e['version']}  {e['assessment']}")
            if st.pending:
                p = st.pending
                verdict = f" ({st.outcome.outcome.value}: {st.outcome.reason})" if st.outcome else ""
                print(f"pending: {p.version} on slot {p.slot.value}, from {p.from_slot.value} "
                      f"({p.from_version}){verdict}")
            else:
                print("pending: none")
            for h in st.history:
                print(f"  {h.get('at')}  {h.get('event'):<14} slot {h.get('slot')}  {h.get('version')}  "
                      f"{h.get('detail')}")
            return 0
        if args.after_boot:
            report = upd.after_boot(cmdline, paths)
            print(f"update check: {report.decision.outcome.value}: {report.decision.reason}")
            if report.restored_from:
                print(f"database restored from {report.restored_from}")
            if report.error:
                print(f"plateau update: {report.error}", file=sys.stderr)
                return 1
            return 0
        prepared = upd.prepare(args.image, cmdline, paths, require_signature=args.require_signature)
    except upd.UpdateError as exc:
        print(f"plateau update: {exc}; nothing written", file=sys.stderr)
        return 2
    plan, bundle = prepared.plan, prepared.bundle
    signed = f"signature OK ({bundle.signed_with})" if bundle.signed_with else "not signed (no update key)"
    print(f"{bundle.path}: version {bundle.manifest.version}, checksums OK, {signed}")
    print(f"running slot {plan.from_slot.value} ({plan.from_version}); will write slot {plan.slot.value} "
          f"({prepared.device})")
    if not args.yes:
        try:
            answer = input(f"Write version {bundle.manifest.version} to slot {plan.slot.value}? [y/N] ")
        except EOFError:
            answer = ""
        if answer.strip().lower() not in ("y", "yes"):
            print("nothing written")
            return 1
    try:
        upd.apply(prepared, paths, progress=lambda msg: print(msg, flush=True))
    except (upd.UpdateError, OSError) as exc:
        print(f"plateau update: write failed: {exc}; slot {plan.from_slot.value} still boots", file=sys.stderr)
        return 2
    print(f"done: restart to run {bundle.manifest.version}; if it does not become healthy, the box "
          f"falls back to slot {plan.from_slot.value}")
    return 0


def _add_backup_parser(sub: argparse._SubParsersAction) -> None:
    bk = sub.add_parser("backup", help="back up or restore configuration and database as one archive")
    bk_sub = bk.add_subparsers(dest="action", required=True)
    create = bk_sub.add_parser("create", help="write a .tar.gz of the configuration, database, flows, prompts")
    create.add_argument("output", type=Path, help="the archive to write (plateau-backup-....tar.gz)")
    create.add_argument("--recordings", action="store_true", help="include the call recordings")
    create.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    _add_site_options(create)
    restore = bk_sub.add_parser("restore", help="check an archive, then restore it (the engine must be stopped"
                                " unless --config-only)")
    restore.add_argument("archive", type=Path)
    restore.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    _add_site_options(restore)
    restore.add_argument("--config-only", action="store_true",
                         help="restore the configuration, flows and prompts only, live (as the web UI does)")
    scheduled = bk_sub.add_parser("scheduled", help="write a scheduled backup if one is due (plateau-backup.timer)")
    scheduled.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    scheduled.add_argument("--now", action="store_true", help="run now, due or not")
    _add_site_options(scheduled)


def cmd_backup(args: argparse.Namespace) -> int:
    import importlib.metadata

    from appliance.store import postgres
    from appliance.store.db import Store
    from appliance.store.errors import StoreError
    from appliance.system import backup as bk

    db = _database(args)
    # PostgreSQL (the site's database): the archive holds the configuration, flows, prompts and
    # recordings; the database itself is the server's, backed up with pg_dump and restored with
    # pg_restore (https://www.postgresql.org/docs/15/backup-dump.html).
    on_server = postgres.is_url(str(db))
    files = _shared_dir(args)
    if args.action == "scheduled":
        return _scheduled_backup(args, db, files)
    if args.action == "create":
        if not on_server and not Path(str(db).removeprefix("sqlite://")).is_file():
            print(f"plateau backup: no database at {db}", file=sys.stderr)
            return 2
        try:
            version = importlib.metadata.version("plateau")
        except importlib.metadata.PackageNotFoundError:
            version = "unknown"
        try:
            with Store(db) as store:
                manifest = bk.create_archive(args.output, store, args.data_dir, version,
                                             include_recordings=args.recordings, files_dir=files)
        except (OSError, StoreError) as exc:
            print(f"plateau backup: {exc}", file=sys.stderr)
            return 1
        schema = f"database schema {manifest['schema_version']}" if not on_server else (
            "configuration only: back the PostgreSQL database up with pg_dump")
        print(f"{args.output}: {len(manifest['files'])} files, {schema}"
              f"{', recordings included' if args.recordings else ''}")
        return 0
    try:
        with open(args.archive, "rb") as fh:
            if args.config_only:
                with Store(db) as store:
                    plan = bk.check_backup(fh, store, args.data_dir)
                    result = bk.apply_backup(plan, store, args.data_dir, files_dir=files)
            elif on_server:
                raise bk.BackupError([f"{postgres.redacted(str(db))} is a PostgreSQL database: restore it with "
                                      "pg_restore, and this archive's configuration with --config-only"])
            elif Path(str(db).removeprefix("sqlite://")) != args.data_dir / bk.DB_NAME:
                raise bk.BackupError([f"a full restore writes {args.data_dir / bk.DB_NAME}, not {db}: "
                                      "give that file's --data-dir, or use --config-only"])
            else:
                running = bk.engine_running(args.data_dir)
                if running:  # before reading a large archive for nothing
                    raise bk.BackupError([f"the engine is running ({running}): stop it first, or use --config-only"])
                plan = bk.check_backup(fh, None, args.data_dir, keep_database=True)
                result = bk.restore_database(plan, args.data_dir)
    except bk.BackupError as exc:
        print("plateau backup: not restored, nothing changed:\n  " + "\n  ".join(exc.errors), file=sys.stderr)
        return 2
    except (OSError, StoreError) as exc:
        print(f"plateau backup: {exc}", file=sys.stderr)
        return 1
    print(f"restored the backup of {plan.manifest.get('created_at')}: " + ", ".join(
        f"{k.replace('_', ' ')} {v}" for k, v in result.items()))
    if args.config_only:
        _reload_running_engine(args.data_dir)
    else:
        print("restart plateau-web if it is running, so it opens the restored database")
    return 0


def _scheduled_backup(args: argparse.Namespace, db: str | Path, files: Path | None) -> int:
    """`plateau backup scheduled`: 0 when nothing was due or the run succeeded, 1 when it failed."""
    import importlib.metadata
    import time

    from appliance.store.db import Store
    from appliance.store.errors import StoreError
    from appliance.system import backup_schedule

    try:
        version = importlib.metadata.version("plateau")
    except importlib.metadata.PackageNotFoundError:
        version = "unknown"
    try:
        with Store(db) as store:
            now = time.time()
            result: backup_schedule.RunResult | None
            if args.now:
                result = backup_schedule.run_backup(store, args.data_dir, version, now, files)
            else:
                result = backup_schedule.run_if_due(store, args.data_dir, version, now, files)
    except StoreError as exc:
        print(f"plateau backup: {exc}", file=sys.stderr)
        return 1
    if result is None:
        print("no scheduled backup due")
        return 0
    if not result.ok:
        print(f"plateau backup: scheduled backup failed: {result.error}", file=sys.stderr)
        return 1
    print(f"{result.path}: {result.size} bytes, {result.removed} old backup(s) removed")
    return 0


def _add_ha_parser(sub: argparse._SubParsersAction) -> None:
    from appliance.cluster.ha import add_parser

    add_parser(sub)


def cmd_ha(args: argparse.Namespace) -> int:
    from appliance.cluster.ha import cli

    return cli(args)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:2] == ["ivr", "simulate"]:
        # The simulator owns its options (--help included), so hand them over untouched.
        from appliance.ivr.simulate import main as simulate_main

        return simulate_main(argv[2:])
    args = _parser().parse_args(argv)
    if args.command == "report":
        from appliance.report_cli import cli as report_cli

        return report_cli(args, _database(args))
    handlers = {"run": cmd_run, "status": cmd_status, "config": cmd_config, "web": cmd_web,
                "linetest": cmd_linetest, "update": cmd_update,
                "firstboot": cmd_firstboot, "health": cmd_health,
                "backup": cmd_backup, "ha": cmd_ha}
    return handlers[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
