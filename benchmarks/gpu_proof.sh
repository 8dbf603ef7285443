#!/usr/bin/env bash
# The gpu class end to end on a GPU host, from a copy of the project (issue 12's proof): exports
# ResNet50 and MobileNetV2 to ONNX (torchvision, random weights, no download), starts the local
# farm with a gpu worker, converts both for --hw gpu, prints each report, runs the gpu tests and
# times the farm's runner against a plain ONNX Runtime CUDA loop.
#
#   benchmarks/gpu_proof.sh [OUT]          # OUT: where models, the farm's home and logs go
#
# Needs: an NVIDIA GPU, farm[gpu] (onnxruntime-gpu), torch and torchvision to export, pytest.
# Not yet run: no session of this project has been lent a GPU host so far.
set -euo pipefail
OUT=${1:-/tmp/farm-gpu-proof}
mkdir -p "$OUT"
export FARM_HOME="$OUT/home"
PY=${PYTHON:-python3}

"$PY" - "$OUT" <<'EOF'
import sys

import torch
import torchvision

out = sys.argv[1]
for name in ("resnet50", "mobilenet_v2"):
    model = getattr(torchvision.models, name)(weights=None).eval()
    torch.onnx.export(
        model, torch.randn(1, 3, 224, 224), f"{out}/{name}.onnx", opset_version=17, dynamo=False,
        input_names=["image"], output_names=["logits"],
        dynamic_axes={"image": {0: "batch"}, "logits": {0: "batch"}},
    )
    print(f"exported {out}/{name}.onnx")
EOF

trap '"$PY" -m farm down || true' EXIT
"$PY" -m farm up --hw gpu
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
for name in resnet50 mobilenet_v2; do
  "$PY" -m farm submit convert "$OUT/$name.onnx" --hw gpu --wait --timeout 1800 | tee "$OUT/$name.submit.log"
  "$PY" -m farm report "$(head -1 "$OUT/$name.submit.log")" --wide | tee "$OUT/$name.report.txt"
done
"$PY" -m pytest -q -p no:cacheprovider tests/workers/test_gpu_ort.py tests/workers/test_gpu_tensorrt.py \
  | tee "$OUT/pytest.log"
"$PY" benchmarks/gpu_runtime.py "$OUT/resnet50.onnx" | tee "$OUT/runtime_resnet50.txt"
"$PY" benchmarks/gpu_runtime.py "$OUT/mobilenet_v2.onnx" | tee "$OUT/runtime_mobilenet_v2.txt"
