#!/usr/bin/env bash
# GPU checks and benchmark, sized to finish in under 10 minutes on one H100/H200: run from the repo root on the
# GPU machine with the wheel bundle in .whl/ (see gpu_setup.sh) and, to save time, the default capture in
# .gpudata/synth-default. Logs and JSON go to one archive, $OUT/gpu_results.tgz; a summary ends the console.
#
# STAGES (default "tests speed lite full", about 8 minutes on an H100) picks from:
#   tests  the GPU-marked tests (pytest -m gpu; TEST_PATHS picks files, default tests/), alone: the export tests'
#          fixture trains on the CPU (~55 s on an H100 machine)
#   speed  hfavatar (GPU defaults) on CUDA; the hash grid with tcnn when it imports, else our torch one
#          (DeviceHashEncoding; said in the JSON's "hash_backend") (~45 s)
#   lite   hfavatar-lite on CUDA exactly as the CPU quality run (800 steps), with a curve: the time the GPU takes
#          to reach the CPU run's quality (~100 s of training, ~3 minutes in all)
#   full   hfavatar on the default capture for FULL_SECONDS of training, with a held-out PSNR curve
#   zju    a ZJU-sized capture (23 cameras, 1024x1024, ZJU_FRAMES frames of the zju preset, made by forked
#          workers: 115 s for 30 frames with 14 workers) and hfavatar on it for ZJU_SECONDS, with a curve
#          (run it on its own: evaluation renders 1024x1024 images)
#
# Every stage's time limit is cut to what the whole BUDGET_SECONDS leaves (keeping RESERVE seconds for the stages
# after it), so a slow stage cannot take the later ones or the archive down with it.
#
# Rehearsal on a CPU machine (checks the script, not the figures):
#   SKIP_SETUP=1 PY=.venv/bin/python DEVICE=cpu STAGES="tests speed lite full zju" ZJU_PRESET=tiny LITE_STEPS=4 \
#     FULL_SECONDS=5 ZJU_SECONDS=5 MESH_RESOLUTION=32 BUDGET_SECONDS=1500 WORKERS=2 bash benchmarks/gpu_benchmark.sh
set -u
OUT="${OUT:-outputs/gpu}"
RES=/tmp/hfavatar-gpu-results  # everything lands here; $OUT gets one archive (one file to copy back)
rm -rf "$RES"
mkdir -p "$OUT" "$RES"
PY="${PY:-python3}"
DEVICE="${DEVICE:-cuda}"
BUDGET_SECONDS="${BUDGET_SECONDS:-560}"
FULL_SECONDS="${FULL_SECONDS:-80}"  # training budget of the hfavatar run on the default capture
ZJU_SECONDS="${ZJU_SECONDS:-90}"     # training budget of the hfavatar run on the ZJU-sized capture
ZJU_PRESET="${ZJU_PRESET:-zju}"
ZJU_FRAMES="${ZJU_FRAMES:-30}"
LITE_STEPS="${LITE_STEPS:-800}"
MESH_RESOLUTION="${MESH_RESOLUTION:-256}"
WORKERS="${WORKERS:-14}"
STAGES=" ${STAGES:-tests speed lite full} "
wants() { [[ "$STAGES" == *" $1 "* ]]; }
started=$(date +%s)
deadline=$(( started + BUDGET_SECONDS ))
stamp() { echo "== $(( $(date +%s) - started )) s: $*"; }
# limit WANTED RESERVE: WANTED seconds, or less so that RESERVE seconds stay for the later stages (at least 5).
limit() { local left=$(( deadline - $(date +%s) - $2 )); (( left < $1 )) || left=$1; (( left > 5 )) || left=5; echo "$left"; }

if [ -z "${SKIP_SETUP:-}" ]; then
  source "$(dirname "$0")/gpu_setup.sh" || exit 1
fi
export PYTHONUNBUFFERED=1
DATA=/tmp/hfavatar-data/synth-default
[ -f .gpudata/synth-default/annots.npy ] && DATA="$PWD/.gpudata/synth-default"
ZJU_DATA=/tmp/hfavatar-data/synth-zju
stamp "import check"
$PY -c "import hfavatar_ns.training, hfavatar_ns.evaluation.avatar_eval, nerfstudio.scripts.train" || exit 1

if wants tests; then
  stamp "GPU tests"
  timeout "$(limit 120 360)" $PY -m pytest -m gpu -q -s -p no:cacheprovider --continue-on-collection-errors ${TEST_PATHS:-tests} \
    >"$RES/gpu_tests.log" 2>&1
  echo "GPU tests: exit $?"; grep -E "passed|skipped|failed|error|ns-export|frame-less" "$RES/gpu_tests.log" | tail -8
fi
if [ ! -f "$DATA/annots.npy" ] && { wants speed || wants lite || wants full; }; then
  stamp "synthesise the default capture"
  $PY -m hfavatar_ns.synth.cli "$DATA" --preset default --workers "$WORKERS" --overwrite >"$RES/synth.log" 2>&1
fi

if wants speed; then
  stamp "speed"
  timeout "$(limit 70 320)" $PY benchmarks/speed_benchmark.py --data "$DATA" --method hfavatar --device "$DEVICE" \
    --steps 10 --warmup 3 --late-step 6000 --render-images 2 --output /tmp/hfavatar-out \
    --json "$RES/speed_hfavatar_cuda.json" >"$RES/speed_full.log" 2>&1
  tail -c 1200 "$RES/speed_full.log"
fi

quality() {  # NAME LIMIT RESERVE ARGS...
  local name="$1" wanted="$2" reserve="$3"; shift 3
  timeout "$(limit "$wanted" "$reserve")" $PY benchmarks/quality_benchmark.py --device "$DEVICE" \
    --mesh-resolution "$MESH_RESOLUTION" --output "/tmp/hfavatar-out/$name" --json "$RES/$name.json" "$@" \
    >"$RES/$name.log" 2>&1
  echo "$name: exit $?"; grep -E "^curve|stopped by" "$RES/$name.log" | tail -8
}
if wants lite; then
  stamp "hfavatar-lite on CUDA, as the CPU quality run"
  quality quality_lite_cuda 200 130 --data "$DATA" --method hfavatar-lite --steps "$LITE_STEPS" --curve-every 200 \
    --max-images 4
fi
if wants full; then
  stamp "hfavatar on the default capture, ${FULL_SECONDS} s of training"
  # The GPU preset's schedule is for 30000 steps; a short run gets the lite preset's proportions instead.
  quality quality_hfavatar_cuda $(( FULL_SECONDS + 70 )) 5 --data "$DATA" --method hfavatar --steps 2000 \
    --max-train-seconds "$FULL_SECONDS" --curve-every 250 --max-images 4 --set pipeline.model.cos_anneal_end=600
fi
if wants zju; then
  stamp "a ZJU-sized capture"
  timeout "$(limit 150 150)" $PY -m hfavatar_ns.synth.cli "$ZJU_DATA" --preset "$ZJU_PRESET" --frames "$ZJU_FRAMES" \
    --workers "$WORKERS" --overwrite >"$RES/synth_zju.log" 2>&1
  echo "synthesis: exit $?"; grep -a "^Wrote" "$RES/synth_zju.log"
  stamp "hfavatar on the ZJU-sized capture, ${ZJU_SECONDS} s of training"
  quality quality_hfavatar_zju_cuda $(( ZJU_SECONDS + 120 )) 5 --data "$ZJU_DATA" --method hfavatar --steps 2000 \
    --max-train-seconds "$ZJU_SECONDS" --curve-every 400 --max-images 2 --set pipeline.model.cos_anneal_end=600
fi

stamp "done"
$PY - "$RES" <<'EOF'
import json, pathlib, sys

for path in sorted(pathlib.Path(sys.argv[1]).glob("*.json")):
    if path.name.endswith(".curve.json"):
        continue
    report = json.loads(path.read_text())
    if "chamfer_ratio_avatar_to_prior" in report:
        a, p = report["avatar"], report["body_prior"]
        print(f"{path.stem}: {report['device']}, {report['steps']} steps in {report['train_seconds']:.0f} s | novel view "
              f"{a['novel_view']['psnr']:.2f}/{a['novel_view']['ssim']:.3f} (prior {p['novel_view']['psnr']:.2f}) | "
              f"novel pose {a['novel_pose']['psnr']:.2f} (prior {p['novel_pose']['psnr']:.2f}) | chamfer "
              f"{a['geometry']['chamfer_mm']:.1f} mm (prior {p['geometry']['chamfer_mm']:.1f}) NC "
              f"{a['geometry']['normal_consistency']:.2f} (prior {p['geometry']['normal_consistency']:.2f}) F "
              f"{a['geometry']['f_score_1cm']:.2f} (prior {p['geometry']['f_score_1cm']:.2f})")
        for point in report["curve"]:
            print(f"    step {point['step']}: {point['train_seconds']:.0f} s, {point['heldout_psnr_2_images']:.2f} dB")
    else:  # a speed report, or a quality run that a time limit cut short
        print(path.stem, json.dumps(report))
EOF
tar czf "$OUT/gpu_results.tgz" -C "$RES" .
