#!/usr/bin/env bash
# Screenshot of the Log Viewer tailing the demo engine, into docs/logs.png.
#
# Runs `mirror-engine run --config config/demo.toml` (its leaders trade on their own, so log
# lines flow) in a scratch folder, opens mirror-logs on a virtual X display (Xvfb) connected
# with the demo's desk token, lets lines arrive, clicks a signal in the table to open its
# fan-out timeline, and takes the picture.
#
# Needs: apt-get install -y xvfb xauth x11-utils imagemagick xdotool
# Usage: scripts/screenshot-logs.sh [output.png]
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$root/docs/logs.png}
target=${CARGO_TARGET_DIR:-$root/target}
export CARGO_TARGET_DIR=$target

for tool in xvfb-run xwininfo import xdotool; do
  command -v "$tool" >/dev/null || { echo "missing $tool: apt-get install -y xvfb xauth x11-utils imagemagick xdotool" >&2; exit 1; }
done

cargo build -q -p mirror-engine --bin mirror-engine
cargo build -q -p mirror-logs --bin mirror-logs

work=$(mktemp -d)
engine_pid=
cleanup() {
  if [ -n "$engine_pid" ]; then kill "$engine_pid" 2>/dev/null || true; wait "$engine_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

# The demo, in a scratch folder (its data/ and logs/ go there), with the desk token.
cp "$root/config/demo.toml" "$work/demo.toml"
export MIRROR_DEMO_DESK_TOKEN=demo-desk-token-0123456789
(cd "$work" && exec "$target/debug/mirror-engine" run --config demo.toml >"$work/engine.out" 2>&1) &
engine_pid=$!
for _ in $(seq 100); do [ -s "$work/data/gateway/gateway-fingerprint.txt" ] && break; sleep 0.2; done
[ -s "$work/data/gateway/gateway-fingerprint.txt" ] || { cat "$work/engine.out" >&2; echo "the engine did not start" >&2; exit 1; }

export XDG_RUNTIME_DIR=$work/xdg
mkdir -m 0700 "$XDG_RUNTIME_DIR"
xvfb-run -a -s "-screen 0 1600x1000x24 -nolisten tcp" bash -c '
  set -euo pipefail
  "$0/debug/mirror-logs" --server 127.0.0.1:7443 \
      --fingerprint "file:$1/data/gateway/gateway-fingerprint.txt" \
      --token-env MIRROR_DEMO_DESK_TOKEN --settings "$1/logs.toml" >"$1/viewer.out" 2>&1 &
  pid=$!
  for _ in $(seq 100); do xwininfo -root -tree | grep -q "Mirror Log Viewer" && break; sleep 0.1; done
  window=$(xdotool search --name "Mirror Log Viewer" | head -1)
  xdotool windowmove "$window" 0 0
  xdotool windowsize "$window" 1600 1000
  # Let the leaders trade and the lines flow in.
  sleep 12
  # Click signal ids in the table (the signal column, rows above the bottom): a row without a
  # signal ignores the click, the last row with one opens its timeline.
  for y in 900 878 856 834 812 790; do
    xdotool mousemove --window "$window" 400 $y click 1
    sleep 0.3
  done
  sleep 1
  xdotool mousemove --window "$window" 1200 980
  sleep 2
  import -window root "$2"
  kill $pid
' "$target" "$work" "$out"
echo "wrote $out"
