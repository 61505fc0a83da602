# Sourced by scripts/test and scripts/cluster: Debian packages installed when missing.
#   ensure_debian_packages PROG PKG...
# Installs the missing ones from Debian's package archive when run as root, else names them and
# fails. No package's service may start while installing: a Debian kamailio on 5060 would be a
# second front door next to our own, a Debian keepalived would hold a VRRP address
# (policy-rc.d, exit 101 = action forbidden). Afterwards, as root, Debian's kamailio and
# keepalived services are kept off even if they were installed earlier or by hand.
ensure_debian_packages() {
    local prog=$1 p policy_rc=/usr/sbin/policy-rc.d own_policy=0 service
    shift
    local missing=()
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    if ((${#missing[@]})); then
        if [ "$(id -u)" -ne 0 ]; then
            echo "$prog: missing Debian packages (run as root to install): ${missing[*]}" >&2
            return 1
        fi
        echo "$prog: installing ${missing[*]}" >&2
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        if [ ! -e "$policy_rc" ]; then
            printf '#!/bin/sh\nexit 101\n' >"$policy_rc" && chmod +x "$policy_rc" && own_policy=1
        fi
        apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
        if ((own_policy)); then rm -f "$policy_rc"; fi
    fi
    if [ "$(id -u)" -eq 0 ]; then
        for service in kamailio keepalived; do
            if [ -d /run/systemd/system ]; then
                systemctl disable --now "$service.service" >/dev/null 2>&1 || true
            elif [ -x "/etc/init.d/$service" ]; then
                invoke-rc.d "$service" stop >/dev/null 2>&1 || true
                update-rc.d "$service" disable >/dev/null 2>&1 || true
            fi
        done
    fi
}
