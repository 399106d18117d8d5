#!/usr/bin/env bash
# One prepared GPU run (for a task lent an accelerator; see docs/benchmarks.md "GPU"): installs the gpu
# extra's onnxruntime-gpu from carried wheels, then runs the serving benchmark with the CUDA and TensorRT
# execution providers on a 1,000,000-item catalogue, writing every result under $OUT.
# Usage on the device machine (repo root): OUT=/some/dir bash bench/gpu_run.sh
set -uo pipefail
OUT=${OUT:-/tmp/streamrec-gpu}
mkdir -p "$OUT"
exec > >(tee "$OUT/log.txt") 2>&1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.csv"
if [[ -d .whl ]]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site
fi
python3 - <<'PY' | tee "$OUT/providers.json"
import json, onnxruntime as ort
print(json.dumps({"onnxruntime": ort.__version__, "providers": ort.get_available_providers()}))
PY
for providers in cuda tensorrt; do
  timeout 240 python3 -m streamrec.cli bench serve --json --providers "$providers" --catalogue-items 1000000 \
    > "$OUT/serve-$providers.json" || echo "{\"providers\": \"$providers\", \"error\": \"exit $?\"}" > "$OUT/serve-$providers.json"
done
# the CPU reference: a call takes ~50-80 ms on a 1M-item catalogue, so 300 calls a server instead of 2,000
timeout 240 python3 -m streamrec.cli bench serve --json --providers cpu --catalogue-items 1000000 --requests 300 \
  --level-seconds 1 > "$OUT/serve-cpu.json"
ls -l "$OUT"
