#!/usr/bin/env bash
# Kill/resume check (not part of `npm test`): runs `gradot tune` on the demo model uninterrupted, then the
# same command again in a fresh folder, SIGKILLing it K times at random moments (mid-step, mid-checkpoint
# write) and re-running until it finishes; the adapter weights must be byte-identical to the uninterrupted
# run's. Usage: tools/faults/kill-resume.sh [K=3] [STEPS=12]
set -u
cd "$(dirname "$0")/../.."
K="${1:-3}"; STEPS="${2:-12}"
DIR=$(mktemp -d /tmp/gradot-kill-XXXX)
ARGS=(public/models/demo --train public/data/genre-short-mc/train.jsonl --steps "$STEPS" --batch 4 --lr 1e-3 --checkpoint-every 1 --lora 4 --adapters 1:1)
node --import tsx src/cli/main.ts tune "${ARGS[@]}" --out "$DIR/ref" --json >/dev/null 2>&1 || { echo "reference run failed"; exit 1; }
kills=0
for i in $(seq 1 "$K"); do
  node --import tsx src/cli/main.ts tune "${ARGS[@]}" --out "$DIR/run" --json >/dev/null 2>"$DIR/err.txt" &
  pid=$!
  sleep "$(awk -v s="$RANDOM" 'BEGIN { srand(s); printf "%.2f", 8 + rand() * 14 }')"
  if kill -9 "$pid" 2>/dev/null; then kills=$((kills + 1)); fi
  wait "$pid" 2>/dev/null
  step=$(node -e 'try { const m = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8")); const l = m.checkpoints.find((c) => c.id === "last"); console.log(l ? l.meta.step : "none"); } catch { console.log("none"); }' "$DIR/run/run/manifest.json")
  echo "  kill $i: last checkpoint step ${step:-none}"
done
node --import tsx src/cli/main.ts tune "${ARGS[@]}" --out "$DIR/run" --json 2>"$DIR/err.txt" | grep -o '"resumedFrom":[^,]*'
if cmp -s "$DIR/ref/adapter.safetensors" "$DIR/run/adapter.safetensors" && cmp -s "$DIR/ref/adapter_model.safetensors" "$DIR/run/adapter_model.safetensors"; then
  echo "kill/resume: $kills SIGKILL(s), resumed weights byte-identical to the uninterrupted run"
  rm -rf "$DIR"
else
  echo "kill/resume: MISMATCH after $kills SIGKILL(s) (files kept in $DIR)"; exit 1
fi
