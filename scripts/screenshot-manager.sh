#!/usr/bin/env bash
# Screenshot of the Trading Manager against the running demo engine, under Xvfb:
# docs/manager.png.
#
#   scripts/screenshot-manager.sh            # needs: xvfb xauth x11-utils imagemagick (Debian)
#
# The demo engine runs from a scratch copy of config/demo.toml (its data folder stays out of
# the repository) with the gateway on MANAGER_SHOT_PORT (default 7643, so that it does not
# meet a demo engine already on 7443), and the desk token exported. The app connects with
# --connect, is given a few seconds of the demo's trading, and is shown with one account
# selected.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
port=${MANAGER_SHOT_PORT:-7643}
settle=${MANAGER_SHOT_SETTLE:-25}
select=${MANAGER_SHOT_SELECT:-fut-double}
out=${1:-docs/manager.png}

for tool in xvfb-run import xwininfo; do
    command -v "$tool" >/dev/null || { echo "missing $tool: apt-get install -y xvfb xauth x11-utils imagemagick" >&2; exit 1; }
done

cargo build -p mirror-engine -p mirror-manager
target=${CARGO_TARGET_DIR:-$root/target}

work=$(mktemp -d)
trap 'kill "${engine_pid:-}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"' EXIT
sed "s/^listen = \"127.0.0.1:7443\"/listen = \"127.0.0.1:$port\"/" config/demo.toml > "$work/demo.toml"
grep -q "127.0.0.1:$port" "$work/demo.toml" || { echo "could not set the gateway port in the copy" >&2; exit 1; }

export MIRROR_DEMO_DESK_TOKEN=demo-desk-token-0123456789
(cd "$work" && exec "$target/debug/mirror-engine" run --config demo.toml > engine.log 2>&1) &
engine_pid=$!
for _ in $(seq 100); do [ -s "$work/data/gateway/gateway-fingerprint.txt" ] && break; sleep 0.2; done
[ -s "$work/data/gateway/gateway-fingerprint.txt" ] || { cat "$work/engine.log" >&2; exit 1; }

mkdir -p "$work/xdg" "$work/run" && chmod 700 "$work/run"
export XDG_CONFIG_HOME="$work/xdg" XDG_RUNTIME_DIR="$work/run"
xvfb-run -a -s "-screen 0 1600x1000x24 -nolisten tcp" bash -c "
  '$target/debug/mirror-manager' --server 127.0.0.1:$port \
      --fingerprint-file '$work/data/gateway/gateway-fingerprint.txt' \
      --token-env MIRROR_DEMO_DESK_TOKEN --select '$select' --connect > '$work/manager.log' 2>&1 & pid=\$!
  for i in \$(seq 100); do xwininfo -root -tree | grep -q 'Mirror Trading Manager' && break; sleep 0.1; done
  sleep $settle
  kill -0 \$pid || { echo 'the manager exited:' >&2; cat '$work/manager.log' >&2; exit 1; }
  import -window root '$out'
  kill \$pid"
echo "wrote $out"
