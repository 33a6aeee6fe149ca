#!/bin/sh
# `make run`: labgwd with simulated radios and a private broker, from the
# build tree, with its state in BUILD/run/. Stop it with Ctrl-C.
set -eu
build=${1:-build}
top=$(cd "$(dirname "$0")/.." && pwd)
run="$top/$build/run"
port=${LABGW_HTTP_PORT:-8080}
mkdir -p "$run/state"
cat > "$run/labgw.conf" <<CONF
# Written by make run (tools/run.sh); edit etc/labgw.conf for real use.
[gateway]
id = lab1
state_dir = $run/state
plugin_dir = $top/$build/plugins

[http]
listen = 127.0.0.1:$port
web_root = $top/web

[mqtt]
broker = spawn
spawn_listen = 127.0.0.1:0

[radio sim0]
module = sim
rate = 20
seed = 1
CONF
echo "labgw: starting with simulated radios (Ctrl-C stops); configuration $run/labgw.conf"
"$top/$build/labgwd" -c "$run/labgw.conf" &
pid=$!
trap 'kill -TERM $pid 2>/dev/null' INT TERM
# the staff key is written at the first start
i=0
while [ ! -s "$run/state/admin.key" ] && [ $i -lt 100 ] && kill -0 $pid 2>/dev/null; do
	sleep 0.1
	i=$((i + 1))
done
if [ -s "$run/state/admin.key" ]; then
	echo "labgw: console  http://127.0.0.1:$port/console/"
	echo "labgw: kiosk    http://127.0.0.1:$port/kiosk/  (?lang=en for English)"
	echo "labgw: frames   http://127.0.0.1:$port/"
	echo "labgw: staff key $(cat "$run/state/admin.key")  (also in $run/state/admin.key)"
fi
wait $pid || true
trap - INT TERM
wait $pid 2>/dev/null || true
