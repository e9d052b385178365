#!/usr/bin/env bash
# Spark resource discovery script for GPUs: prints {"name":"gpu","addresses":["0","1",...]}.
# Used by spark.executor.resource.gpu.discoveryScript / spark.worker.resource.gpu.discoveryScript.
# Honours CUDA_VISIBLE_DEVICES when set (then addresses are the visible ordinals 0..n-1, as CUDA numbers them).
set -euo pipefail
if [[ -n "${CUDA_VISIBLE_DEVICES:-}" ]]; then
  IFS=',' read -r -a visible <<< "$CUDA_VISIBLE_DEVICES"
  addrs=()
  for i in "${!visible[@]}"; do addrs+=("\"$i\""); done
elif command -v nvidia-smi >/dev/null 2>&1; then
  mapfile -t idx < <(nvidia-smi --query-gpu=index --format=csv,noheader 2>/dev/null | tr -d ' ')
  addrs=()
  for i in "${idx[@]}"; do [[ -n "$i" ]] && addrs+=("\"$i\""); done
else
  addrs=()
fi
( IFS=','; echo "{\"name\":\"gpu\",\"addresses\":[${addrs[*]:-}]}" )
