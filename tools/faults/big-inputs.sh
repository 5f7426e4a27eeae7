#!/usr/bin/env bash
# The fault cases that need hundreds of MB to GB of input (not part of `npm test`): builds them cheaply
# (tools/faults/make-inputs.ts), runs each through the CLI under /usr/bin/time, and prints one line per
# case: exit code, wall seconds, peak RSS, and the error's first line. Usage: tools/faults/big-inputs.sh [DIR]
# (needs ~800 MB of disk in DIR; default a temp folder, removed at the end).
set -u
cd "$(dirname "$0")/../.."
DIR="${1:-$(mktemp -d /tmp/gradot-big-inputs-XXXX)}"
CLI="node --import tsx src/cli/main.ts"
DEMO=public/models/demo
TASK=public/data/genre-short-mc/train.jsonl
[ -f "$DIR/ascii-600mb.jsonl" ] || npx tsx tools/faults/make-inputs.ts "$DIR" >/dev/null || exit 1
ls -la "$DIR" | awk '$9 ~ /\./ && $9 !~ /^\.+$/ {print "  input", $5, $9}'
run() {
  local name="$1"; shift
  local out; out=$(/usr/bin/time -f '%e %M' -o "$DIR/time.txt" timeout 300 "$@" 2>&1 >"$DIR/stdout.txt"); local rc=$?
  local wall=? rss=0
  read -r wall rss < <(tail -n 1 "$DIR/time.txt")
  local msg; msg=$( (cat "$DIR/stdout.txt"; echo "$out") | grep -m1 -E '"message"|gradot |Error|records' | cut -c1-220)
  printf '%-28s rc=%-3s %6ss %7s MB  %s\n' "$name" "$rc" "$wall" "$((rss / 1024))" "$msg"
}
run "baseline: inspect demo"     $CLI inspect $DEMO --json
run "baseline: eval demo (2 q.)" $CLI eval $DEMO --task public/data/genre-short-mc/test.jsonl --limit 2 --json
run "zip bomb 3 GiB (inspect)"   $CLI inspect "$DIR/bomb.zip" --json
run "lying zip (inspect)"        $CLI inspect "$DIR/liar.zip" --json
run "n_layer 1e9 (inspect)"      $CLI inspect "$DIR/layers-1e9" --json
run "1.4M header entries"        $CLI inspect "$DIR/many-entries" --json
run "--lora 100000 (tune)"       $CLI tune $DEMO --train $TASK --lora 100000 --steps 1 --out "$DIR/o-lora" --json
run "100 MB one-line JSONL"      $CLI eval $DEMO --task "$DIR/oneline.jsonl" --json
run "600 MB ASCII JSONL (bytes)" npx tsx tools/faults/read-dataset.ts "$DIR/ascii-600mb.jsonl" bytes
run "600 MB ASCII JSONL (stream)" npx tsx tools/faults/read-dataset.ts "$DIR/ascii-600mb.jsonl" stream
run "--out /proc/x (compress)"   $CLI compress $DEMO --method drop --keep 0.5 --support $TASK --out /proc/x --json
if [ -z "${1:-}" ]; then rm -rf "$DIR"; fi
