#!/bin/bash
# Provision the Plateau dev VM (Vagrantfile; Debian 12 "debian/bookworm64"), as root, re-runnable
# (`vagrant provision` after changing the checkout). Installs like the image does: Debian packages,
# Plateau from the checkout into /opt/plateau/venv with the image's pinned dependencies
# (image/requirements.lock), user plateau, and the image's own systemd units, udev rules and
# firewall (image/systemd, image/udev, image/nftables.conf), used as they are.
# Differences from the image, on purpose: read-write root, no A/B slots (plateau-health only acts
# on a systemd-boot trial boot, so it stays inactive here), and the firewall also lets SSH in.
set -euo pipefail
SRC=${1:-/vagrant}
VENV=/opt/plateau/venv
export DEBIAN_FRONTEND=noninteractive

# --- Debian packages: image/packages.list's runtime ones + what builds systemd-python ----------
apt-get update -q
apt-get install -y -q --no-install-recommends \
    python3 python3-venv python3-dev gcc pkg-config libsystemd-dev \
    openssl nftables iproute2 sqlite3 espeak-ng ca-certificates udev

# --- user (as image/build-customize) ---------------------------------------------------------
if ! id plateau >/dev/null 2>&1; then
    useradd --system --user-group --home-dir /var/lib/plateau --no-create-home \
        --shell /usr/sbin/nologin --groups dialout,audio --comment "Plateau appliance" plateau
fi
install -d -o plateau -g plateau -m 0750 /var/lib/plateau

# --- Plateau in its own virtualenv, from the checkout ------------------------------------------
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/pip" install -q --upgrade pip
"$VENV/bin/pip" install -q -r "$SRC/image/requirements.lock"
# Built from a copy: the synced folder may be read-only, and the build must not litter the checkout.
BUILD=$(mktemp -d)
trap 'rm -rf "$BUILD"' EXIT
tar -C "$SRC" --exclude=.git --exclude=out --exclude='*.egg-info' --exclude=.vagrant -cf - . | tar -C "$BUILD" -xf -
"$VENV/bin/pip" install -q --no-deps --force-reinstall "$BUILD"
ln -sf "$VENV/bin/plateau" /usr/local/bin/plateau

# --- the image's units, udev rules and firewall ------------------------------------------------
# /usr/local/lib/systemd/system is on systemd's unit path; the image uses /usr/lib/systemd/system.
install -d /usr/local/lib/systemd/system
cp -r "$SRC/image/systemd/." /usr/local/lib/systemd/system/
install -m 0644 "$SRC/image/udev/90-plateau.rules" /etc/udev/rules.d/90-plateau.rules
udevadm control --reload || true
install -D -m 0644 "$SRC/image/nftables.conf" /usr/local/share/plateau/nftables.conf
cat > /etc/nftables.conf <<'NFT'
#!/usr/sbin/nft -f
# Dev VM: the appliance's ruleset (image/nftables.conf) plus SSH for `vagrant ssh`.
include "/usr/local/share/plateau/nftables.conf"
add rule inet plateau input tcp dport 22 accept
NFT
nft -c -f /etc/nftables.conf
systemctl daemon-reload
systemctl enable nftables.service plateau-update-check.service plateau-firstboot.service \
    plateau-engine.service plateau-web.service plateau-health.service
systemctl restart nftables.service
systemctl start plateau-firstboot.service
systemctl restart plateau-engine.service plateau-web.service

echo "Plateau dev VM ready. From the host: SIP udp/tcp localhost:5060, web UI https://localhost:8443/"
if [ -f /var/lib/plateau/firstboot/admin-password ]; then
    echo "web login: admin / $(cat /var/lib/plateau/firstboot/admin-password) (one-time; change it at first login)"
fi
