#!/bin/sh
# Install the Debian 12 packages labgw's build and tests need: only the
# missing ones, with apt-get, when run as root; otherwise print the command.
set -eu
PKGS="
build-essential pkg-config
libuv1-dev libwebsockets-dev libwebsockets-evlib-uv libjansson-dev libinih-dev
libsystemd-dev libmosquitto-dev libssl-dev libcmocka-dev libsqlite3-dev
libnl-3-dev libnl-genl-3-dev
mosquitto mosquitto-clients util-linux
python3 python3-pytest python3-websockets python3-paho-mqtt python3-jsonschema python3-yaml
python3-cryptography python3-dbus python3-dbusmock dbus-daemon
clang-format clang libclang-rt-14-dev
qemu-system-x86 busybox-static cpio kmod
libwebsockets-test-server
dbus bluez bluez-test-tools python3-dbus python3-gi
hostapd wpasupplicant iw wireless-regdb
debhelper lintian fakeroot dpkg-dev
chromium libjs-chart.js nodejs
tshark
"
# npm comes with some builds of nodejs (NodeSource's), where Debian's npm
# package would conflict; ask for it only when there is none
command -v npm >/dev/null 2>&1 || PKGS="$PKGS npm"
missing=""
for p in $PKGS; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
		missing="$missing $p"
	fi
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
	echo "labgw needs these Debian packages:$missing" >&2
	echo "Install them with:" >&2
	echo "  sudo apt-get install -y --no-install-recommends$missing" >&2
	exit 1
fi
echo "make deps: installing$missing"
export DEBIAN_FRONTEND=noninteractive
# tshark (pcapng captures are checked with it) asks whether to let non-root
# users capture: no, and never interactively
echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections
# a fresh machine may have no package lists yet
if ! apt-get install -y -q --no-install-recommends $missing; then
	apt-get update -q
	apt-get install -y -q --no-install-recommends $missing
fi
