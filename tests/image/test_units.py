"""The image's systemd units, udev rules and firewall, checked by the tools that will load them.

- systemd units: `systemd-analyze verify --root=TREE` (systemd 252) on a tree holding the host's
  stock units, ours and stand-ins for the executables our ExecStart= lines name (verify checks
  they exist and are executable); any message about our units fails. `systemctl --root enable`
  as image/build-customize does. Every ExecStart= of ours parses with the real `plateau` CLI.
- nftables: `nft -c -f image/nftables.conf` (Debian package nftables; needs root: CAP_NET_ADMIN).
- udev: systemd 252 has no `udevadm verify` (253+), so (1) udevd's own rules parser runs through
  `udevadm test` with our file as the only rules file in /etc/udev/rules.d (a private mount
  namespace, so the host is untouched), which reports unknown keys, bad operators and bad
  values; (2) a strict check of our own for what 252 accepts silently (a missing comma between
  pairs, a GOTO without its LABEL). Neither proves the rules *match* a real board: that needs
  the device (no sysfs twin exists for USB).
"""
from __future__ import annotations

import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from appliance.cli import _parser
from appliance.system.systemd import watchdog_interval

REPO = Path(__file__).resolve().parents[2]
UNITS = REPO / "image" / "systemd"
RULES = REPO / "image" / "udev" / "90-plateau.rules"
NFT = REPO / "image" / "nftables.conf"
HOST_UNITS = Path("/usr/lib/systemd/system")
OUR_UNITS = sorted(p.name for pattern in ("*.service", "*.timer") for p in UNITS.glob(pattern))
EXPECTED = {"plateau-engine.service", "plateau-backup.service", "plateau-web.service", "plateau-firstboot.service",
            "plateau-health.service", "plateau-update-check.service", "plateau-update-confirm.service"}


def _unit_values(path: Path, key: str) -> list[str]:
    return [line.split("=", 1)[1] for line in path.read_text().splitlines() if line.startswith(key + "=")]


def _exec_paths() -> set[str]:
    """Every executable our Exec*= lines name (after their -+@!: prefixes)."""
    found = set()
    for unit in UNITS.rglob("*"):
        if unit.is_file():
            for line in unit.read_text().splitlines():
                m = re.match(r"Exec\w+=[-+@!:]*(/\S+)", line)
                if m:
                    found.add(m.group(1))
    return found


def _tree(root: Path, units: Path = UNITS) -> Path:
    """An image-like root: stock units of this host, ours over them, stand-in executables."""
    dest = root / "usr/lib/systemd/system"
    shutil.copytree(HOST_UNITS, dest, symlinks=True)
    shutil.copytree(units, dest, dirs_exist_ok=True)
    for exe in _exec_paths():
        target = root / exe.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text("#!/bin/sh\nexit 0\n")
        target.chmod(0o755)
    (root / "etc/systemd/system").mkdir(parents=True, exist_ok=True)
    return root


def _verify(root: Path, names: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["systemd-analyze", "verify", f"--root={root}", *names], capture_output=True,
                          text=True, timeout=60, check=False, cwd=root)


def _about_ours(output: str) -> list[str]:
    return [line for line in output.splitlines()
            if "plateau" in line or "boot-complete" in line or "Command " in line]


def test_all_units_exist() -> None:
    assert EXPECTED <= set(OUR_UNITS)
    assert (UNITS / "boot-complete.target.d" / "plateau.conf").is_file()


def test_systemd_analyze_verify_is_clean(tmp_path: Path) -> None:
    root = _tree(tmp_path / "root")
    res = _verify(root, [*OUR_UNITS, "boot-complete.target"])
    assert res.returncode == 0, res.stdout + res.stderr
    assert _about_ours(res.stdout + res.stderr) == [], res.stdout + res.stderr


def test_verify_catches_a_broken_unit(tmp_path: Path) -> None:
    """The check above can fail: a typo and a missing executable are both reported."""
    broken = tmp_path / "units"
    shutil.copytree(UNITS, broken)
    engine = broken / "plateau-engine.service"
    engine.write_text(engine.read_text().replace("NoNewPrivileges=yes", "NoNewPrivilege=yes"))
    web = broken / "plateau-web.service"
    web.write_text(web.read_text().replace("/opt/plateau/venv/bin/plateau web", "/opt/plateau/bin/plateau web"))
    root = _tree(tmp_path / "root", broken)
    (root / "opt/plateau/bin/plateau").unlink(missing_ok=True)
    res = _verify(root, OUR_UNITS)
    text = res.stdout + res.stderr
    assert "Unknown key 'NoNewPrivilege'" in text
    assert "/opt/plateau/bin/plateau is not executable" in text


def test_units_enable_like_the_image_build(tmp_path: Path) -> None:
    root = _tree(tmp_path / "root")
    res = subprocess.run(["systemctl", f"--root={root}", "enable", *OUR_UNITS], capture_output=True,
                         text=True, timeout=60, check=False)
    assert res.returncode == 0, res.stderr
    etc = root / "etc/systemd/system"
    assert (etc / "multi-user.target.wants/plateau-engine.service").is_symlink()
    assert (etc / "multi-user.target.wants/plateau-web.service").is_symlink()
    assert (etc / "boot-complete.target.requires/plateau-health.service").is_symlink()
    assert (etc / "timers.target.wants/plateau-backup.timer").is_symlink()


@pytest.mark.parametrize("unit", sorted(EXPECTED))
def test_exec_start_parses_with_the_plateau_cli(unit: str) -> None:
    for line in _unit_values(UNITS / unit, "ExecStart"):
        argv = shlex.split(line.lstrip("-+@!:"))
        assert argv[0] == "/opt/plateau/venv/bin/plateau"
        args = _parser().parse_args(argv[1:])  # SystemExit (argparse) on an unknown option
        if hasattr(args, "data_dir"):
            assert str(args.data_dir) == "/var/lib/plateau"


def test_engine_unit_matches_the_engine() -> None:
    engine = UNITS / "plateau-engine.service"
    assert _unit_values(engine, "Type") == ["notify"]
    assert _unit_values(engine, "User") == ["plateau"]
    watchdog = _unit_values(engine, "WatchdogSec")[0]
    seconds = int(watchdog.removesuffix("s"))
    # systemd hands WATCHDOG_USEC to the service; the engine pings at half of it (sd_watchdog_enabled(3)).
    ping = watchdog_interval({"WATCHDOG_USEC": str(seconds * 1_000_000)})
    assert ping is not None and ping <= seconds / 2
    argv = shlex.split(_unit_values(engine, "ExecStart")[0])
    args = _parser().parse_args(argv[1:])
    assert (args.sip_ip, args.sip_port, args.no_demo) == ("auto", 5060, True)


def test_health_gates_boot_complete() -> None:
    health = UNITS / "plateau-health.service"
    assert _unit_values(health, "FailureAction") == ["reboot"]
    assert "plateau-engine.service" in _unit_values(health, "After")[0]
    dropin = (UNITS / "boot-complete.target.d" / "plateau.conf").read_text()
    assert "Requires=plateau-health.service" in dropin and "After=plateau-health.service" in dropin


# -- nftables --------------------------------------------------------------------------------
def test_nftables_conf_is_accepted_by_nft() -> None:
    res = subprocess.run(["nft", "-c", "-f", str(NFT)], capture_output=True, text=True, timeout=30, check=False)
    assert res.returncode == 0, res.stderr


def test_nft_check_rejects_a_broken_ruleset(tmp_path: Path) -> None:
    bad = tmp_path / "bad.conf"
    bad.write_text(NFT.read_text().replace("udp dport $RTP_PORTS accept", "udp dport $RTP_PORTS acept"))
    res = subprocess.run(["nft", "-c", "-f", str(bad)], capture_output=True, text=True, timeout=30, check=False)
    assert res.returncode != 0


def test_firewall_ports_match_the_units_and_cli() -> None:
    text = NFT.read_text()
    run = _parser().parse_args(["run"])
    lo, hi = run.rtp_ports
    assert f"define RTP_PORTS = {lo}-{hi}" in text
    assert "define SIP_PORT = 5060" in text and "define WEB_PORT = 443" in text
    assert "policy drop;" in text and "ct state established,related accept" in text
    assert "nd-neighbor-solicit" in text and "nd-neighbor-advert" in text
    web = _unit_values(UNITS / "plateau-web.service", "ExecStart")[0]
    assert "--bind 0.0.0.0:443" in web


# -- udev ------------------------------------------------------------------------------------
_MATCH_KEYS = {"ACTION", "DEVPATH", "KERNEL", "KERNELS", "NAME", "SYMLINK", "SUBSYSTEM", "SUBSYSTEMS",
               "DRIVER", "DRIVERS", "TAG", "TAGS", "TEST", "PROGRAM", "RESULT", "CONST"}
_ASSIGN_KEYS = {"NAME", "SYMLINK", "OWNER", "GROUP", "MODE", "TAG", "SECLABEL", "RUN", "LABEL", "GOTO",
                "OPTIONS", "IMPORT", "ENV", "ATTR", "SYSCTL"}
_WITH_ATTR = {"ENV", "ATTR", "ATTRS", "SYSCTL", "IMPORT", "TEST", "RUN", "CONST", "SECLABEL"}
_PAIR = re.compile(r'\s*([A-Z]+)(?:\{([^}]*)\})?\s*(==|!=|\+=|-=|:=|=)\s*"((?:[^"\\]|\\.)*)"\s*')


def udev_rule_problems(text: str) -> list[str]:
    """Strict syntax check of a udev rules file: ``KEY[{attr}] OP "value"`` pairs, comma-separated."""
    problems = []
    labels = set(re.findall(r'LABEL="([^"]+)"', text))
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        pos = 0
        while pos < len(line):
            m = _PAIR.match(line, pos)
            if m is None:
                problems.append(f"{number}: cannot parse {line[pos:]!r}")
                break
            key, attr, op, value = m.groups()
            is_match = op in ("==", "!=")
            allowed = _MATCH_KEYS | {"ENV", "ATTR", "ATTRS", "TEST", "CONST"} if is_match else _ASSIGN_KEYS
            if key not in allowed:
                problems.append(f"{number}: {key} cannot be used with {op}")
            if (attr is not None) != (key in _WITH_ATTR) and key not in ("RUN", "IMPORT", "TEST"):
                problems.append(f"{number}: {key} {'needs' if attr is None else 'takes no'} {{...}}")
            if key == "GOTO" and value not in labels:
                problems.append(f"{number}: GOTO {value!r} has no LABEL")
            if key == "MODE" and not re.fullmatch(r"0[0-7]{3}", value):
                problems.append(f"{number}: MODE {value!r} is not octal")
            pos = m.end()
            if pos < len(line):
                if line[pos] != ",":
                    problems.append(f"{number}: missing comma before {line[pos:]!r}")
                    break
                pos += 1
    return problems


def test_udev_rules_strict_syntax() -> None:
    assert udev_rule_problems(RULES.read_text()) == []


def test_udev_strict_check_can_fail() -> None:
    bad = 'KERNEL=="ttyACM*" GROUP="dialout"\nGOTO="nowhere"\nMODE=="0660"\nENV="x"\n'
    problems = udev_rule_problems(bad)
    assert any("missing comma" in p for p in problems)
    assert any("no LABEL" in p for p in problems)
    assert any("MODE cannot be used with ==" in p for p in problems)
    assert any("ENV needs" in p for p in problems)


def _udevadm_test(rules: Path) -> str:
    """udevadm test with ``rules`` as /etc/udev/rules.d (a private mount namespace; the host is untouched)."""
    script = f'mount --bind "{rules}" /etc/udev/rules.d && exec udevadm test --action=add /sys/class/tty/tty0'
    res = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
                         capture_output=True, text=True, timeout=60, check=False)
    assert res.returncode == 0, res.stderr[-3000:]
    return res.stdout + res.stderr


def test_udev_rules_pass_udevds_parser(tmp_path: Path) -> None:
    rules = tmp_path / "rules.d"
    rules.mkdir()
    shutil.copy(RULES, rules)
    out = _udevadm_test(rules)
    assert f"Reading rules file: /etc/udev/rules.d/{RULES.name}" in out
    ours = [line for line in out.splitlines() if RULES.name in line and "Reading rules file" not in line]
    assert ours == [], "\n".join(ours)


def test_udevds_parser_reports_a_broken_rule(tmp_path: Path) -> None:
    rules = tmp_path / "rules.d"
    rules.mkdir()
    (rules / RULES.name).write_text(RULES.read_text().replace('GROUP="dialout"', 'GRUOP="dialout"'))
    out = _udevadm_test(rules)
    assert f"{RULES.name}:" in out and "GRUOP" in out


def test_dev_vm_firewall_is_the_image_ruleset_plus_ssh(tmp_path: Path) -> None:
    """image/devvm-provision.sh writes an /etc/nftables.conf that includes ours and adds SSH."""
    script = (REPO / "image" / "devvm-provision.sh").read_text()
    m = re.search(r"<<'NFT'\n(.*?)\nNFT\n", script, re.S)
    assert m is not None
    conf = m.group(1).replace("/usr/local/share/plateau/nftables.conf", str(NFT))
    assert f'include "{NFT}"' in conf and "tcp dport 22 accept" in conf
    (tmp_path / "nftables.conf").write_text(conf + "\n")
    res = subprocess.run(["nft", "-c", "-f", str(tmp_path / "nftables.conf")], capture_output=True, text=True,
                         timeout=30, check=False)
    assert res.returncode == 0, res.stderr
