#!/usr/bin/env bash
# Issue 14's GPU figures in one run on a device machine (NVIDIA H100/H200, Python 3.12, torch and
# torchvision preinstalled, no network): see bench/README.md ("GPU check").
#
#   bash bench/gpu_check.sh              # on the device machine, with `.whl` carried (captum, grad-cam, ttach)
#   SALIENCY_GPU_CHECK_DEVICE=cpu bash bench/gpu_check.sh --quick    # here: the same logic, small and on CPU
#
# Runs bench_vs_anchors.py (ResNet-50, 224 px: occlusion, Score-CAM, IG, CAMs, engine reuse), the session
# bench, and the comparison grid with its CAM-switching pass count; writes into $OUT (default
# /tmp/gpu_check): log.txt, anchors.json, session.json, grid.json, summary.json (figures beside the goals).
# Exit status: 0 when every bench ran (goals missed are reported, not failures), 1 when one failed.
set -uo pipefail

DEVICE="${SALIENCY_GPU_CHECK_DEVICE:-cuda}"
QUICK=0
if [[ "${1:-}" == "--quick" ]]; then QUICK=1; fi
OUT="${OUT:-/tmp/gpu_check}"
mkdir -p "$OUT"
cd "$(dirname "$0")/.." || exit 1
export PYTHONUNBUFFERED=1 TQDM_DISABLE=1
LOG="$OUT/log.txt"
: >"$LOG"

# The anchors travel as wheels (pure Python; their other needs are in the device image).
if ! python3 -c "import captum, pytorch_grad_cam" 2>/dev/null; then
  if ! ls .whl/*.whl >/dev/null 2>&1; then
    echo "captum / pytorch_grad_cam missing and no wheels in .whl/ (see bench/README.md)" | tee -a "$LOG"
    exit 1
  fi
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
    .whl/*.whl 2>&1 | tee -a "$LOG" || exit 1
  export PYTHONPATH="/tmp/site${PYTHONPATH:+:$PYTHONPATH}"
fi

{
  date -u
  nvidia-smi -L 2>/dev/null || echo "no nvidia-smi"
  python3 -c "import sys, torch, torchvision, captum, pytorch_grad_cam; from importlib.metadata import version; \
print('python', sys.version.split()[0], 'torch', torch.__version__, 'torchvision', torchvision.__version__, \
'captum', captum.__version__, 'grad-cam', version('grad-cam'), 'cuda', torch.cuda.is_available())"
} 2>&1 | tee -a "$LOG"
if [[ "$DEVICE" == cuda* ]] && ! python3 -c "import torch, sys; sys.exit(not torch.cuda.is_available())"; then
  echo "device $DEVICE asked for, but torch sees no CUDA device" | tee -a "$LOG"
  exit 1
fi

if [[ $QUICK == 1 ]]; then
  ANCHORS=(--model resnet18 --size 64 --repeat 1 --batch-size 16 --threads 2)
  SESSION=(--size 64 --batch-size 16 --threads 2)
  GRID=(--model resnet18 --size 64 --repeat 1 --threads 2)
  LIMIT=300
else
  ANCHORS=(--model resnet50 --size 224 --repeat 3 --batch-size 64)
  SESSION=(--size 224 --batch-size 64)
  GRID=(--model resnet50 --size 224 --repeat 5)
  LIMIT=240
fi
METHODS=occlusion,scorecam,integrated_gradients,gradcam,gradcam_pp,eigencam,reuse
FAILED=0

run() {  # name, then the command; output to the log, a hang stopped after $LIMIT seconds
  local name=$1
  shift
  echo "== $name: $*" | tee -a "$LOG"
  timeout "$LIMIT" "$@" 2>&1 | tee -a "$LOG"
  local rc=${PIPESTATUS[0]}
  echo "== $name: exit $rc" | tee -a "$LOG"
  if [[ $rc != 0 ]]; then FAILED=1; fi
}

run anchors python3 bench/bench_vs_anchors.py --device "$DEVICE" --methods "$METHODS" "${ANCHORS[@]}" \
  --json "$OUT/anchors.json"
run session python3 bench/session.py --device "$DEVICE" "${SESSION[@]}" --json "$OUT/session.json"
run grid python3 bench/grid.py --device "$DEVICE" "${GRID[@]}" --json "$OUT/grid.json"

python3 - "$OUT" <<'EOF' 2>&1 | tee -a "$LOG"
"""The figures beside issue 14's goals, from the benches' JSON."""
import json
import sys
from pathlib import Path

out = Path(sys.argv[1])


def load(name):
    path = out / f"{name}.json"
    return json.loads(path.read_text()) if path.is_file() else None


anchors, session, grid = load("anchors"), load("session"), load("grid")
checks = []


def check(what, value, goal, ok):
    checks.append({"what": what, "value": value, "goal": goal, "ok": ok})
    shown = "missing" if value is None else value
    print(f"{what}: {shown} (goal {goal}) -> {'met' if ok else 'NOT met'}")


for r in (anchors or {}).get("rows", []):
    if r["method"].startswith("occlusion"):
        check(f"{r['method']} vs {r['anchor']}, ours/anchor", r["ratio"], "<= 0.5", (r["ratio"] or 9) <= 0.5)
    if r["method"].startswith("scorecam"):
        check(f"{r['method']} vs {r['anchor']}, ours/anchor", r["ratio"], "<= 0.25", (r["ratio"] or 9) <= 0.25)
if anchors is None:
    check("bench_vs_anchors", None, "ran", False)
if grid is not None:
    check("grid of 8, cold ms", grid["cold_ms"], "<= 300", grid["cold_ms"] <= 300)
    check("CAM switching, images after the first", grid["cam_switch_passes"], "== 0", grid["cam_switch_ok"])
else:
    check("grid", None, "ran", False)
if session is not None:
    check("session, anchors' seconds / ours", session["speedup"], ">= 5", session["speedup"] >= 5)
    check("session, reused steps' images", session["reuse_passes"], "all 0", session["reuse_ok"])
else:
    check("session", None, "ran", False)
device = next((d["device"] for d in (anchors, session, grid) if d), "?")
(out / "summary.json").write_text(json.dumps({"device": device, "checks": checks}, indent=1) + "\n")
EOF

echo "== done; benches failed: $FAILED; files in $OUT" | tee -a "$LOG"
exit $FAILED
