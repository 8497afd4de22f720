#!/usr/bin/env bash
# Screenshot of the Map Editor against the running demo engine, under Xvfb: docs/map.png.
#
#   scripts/screenshot-map.sh                # needs: xvfb xauth x11-utils imagemagick (Debian)
#
# The demo engine runs from a scratch copy of config/demo.toml with the gateway on
# MAP_SHOT_PORT (default 7653). The editor opens an edited copy of the same file (one link
# added: bravo-fut also copied straight to fut-chain, one contract) and connects, so the
# picture shows the map, the pending change in green, the checks' findings and the new link's
# rules in the side panel.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
port=${MAP_SHOT_PORT:-7653}
settle=${MAP_SHOT_SETTLE:-8}
out=${1:-docs/map.png}

for tool in xvfb-run import xwininfo; do
    command -v "$tool" >/dev/null || { echo "missing $tool: apt-get install -y xvfb xauth x11-utils imagemagick" >&2; exit 1; }
done

cargo build -p mirror-engine -p mirror-map
target=${CARGO_TARGET_DIR:-$root/target}

work=$(mktemp -d)
trap 'kill "${engine_pid:-}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"' EXIT
sed "s/^listen = \"127.0.0.1:7443\"/listen = \"127.0.0.1:$port\"/" config/demo.toml > "$work/demo.toml"
grep -q "127.0.0.1:$port" "$work/demo.toml" || { echo "could not set the gateway port in the copy" >&2; exit 1; }
cp "$work/demo.toml" "$work/edited.toml"
printf '\n[[links]]\nleader = "bravo-fut"\nfollower = "fut-chain"\nsizing = { mode = "fixed", qty = 1 }\n' >> "$work/edited.toml"

export MIRROR_DEMO_DESK_TOKEN=demo-desk-token-0123456789
(cd "$work" && exec "$target/debug/mirror-engine" run --config demo.toml > engine.log 2>&1) &
engine_pid=$!
for _ in $(seq 100); do [ -s "$work/data/gateway/gateway-fingerprint.txt" ] && break; sleep 0.2; done
[ -s "$work/data/gateway/gateway-fingerprint.txt" ] || { cat "$work/engine.log" >&2; exit 1; }

mkdir -p "$work/xdg" "$work/run" && chmod 700 "$work/run"
export XDG_CONFIG_HOME="$work/xdg" XDG_RUNTIME_DIR="$work/run"
xvfb-run -a -s "-screen 0 1600x1000x24 -nolisten tcp" bash -c "
  '$target/debug/mirror-map' --server 127.0.0.1:$port \
      --fingerprint-file '$work/data/gateway/gateway-fingerprint.txt' \
      --token-env MIRROR_DEMO_DESK_TOKEN --open '$work/edited.toml' \
      --select-link 'bravo-fut,fut-chain' --connect > '$work/map.log' 2>&1 & pid=\$!
  for i in \$(seq 100); do xwininfo -root -tree | grep -q 'Mirror Map Editor' && break; sleep 0.1; done
  sleep $settle
  import -window root '$out'
  kill \$pid"
echo "wrote $out"
