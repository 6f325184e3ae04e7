#!/usr/bin/env bash
# run-selftest.sh [OUT_DIR]
#
# Builds and runs the CPU kernel simulator's self-test: the runtime plus a registry of
# src/test/cuda/cusim_selftest.cu and every src/main/cuda/*.cu (so the shipped kernels are at
# least compiled by g++ -DCUSIM), linked with the plain C++ driver selftest_main.cpp.
# Output goes to OUT_DIR (default /tmp/cusim-dev). If nvcc is on PATH, the self-test kernels are
# also compiled by nvcc to keep them valid CUDA (skip with CUSIM_SKIP_NVCC=1).
set -euo pipefail

die() { echo "run-selftest.sh: $*" >&2; exit 1; }
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)
out=${1:-/tmp/cusim-dev}
mkdir -p "$out"

command -v g++ >/dev/null || die "g++ not found on PATH"
cuda_inc=
candidates=()
if nvcc_path=$(command -v nvcc); then candidates+=("$(dirname "$(readlink -f "$nvcc_path")")/../include"); fi
[[ -n ${CUDA_HOME:-} ]] && candidates+=("$CUDA_HOME/include")
candidates+=(/usr/local/cuda/include)
for c in "${candidates[@]}"; do
    if [[ -f $c/cuda_fp16.h ]]; then cuda_inc=$(cd "$c" && pwd); break; fi
done
[[ -n $cuda_inc ]] || die "CUDA headers not found (no cuda_fp16.h next to nvcc, in \$CUDA_HOME or /usr/local/cuda/include)"

selftest_cu=$repo/src/test/cuda/cusim_selftest.cu
shopt -s nullglob
kernels=("$selftest_cu" "$repo"/src/main/cuda/*.cu)
shopt -u nullglob

if [[ -z ${CUSIM_SKIP_NVCC:-} ]] && command -v nvcc >/dev/null; then
    echo "nvcc: compiling $(basename "$selftest_cu") for sm_80"
    nvcc -arch=sm_80 -c -o /dev/null -x cu -I "$repo/src/main/cuda" "$selftest_cu"
fi

"$repo/native-build/gen-cusim-registry.sh" "$out/cusim_selftest_registry.cpp" "${kernels[@]}"
echo "g++: building $out/cusim_selftest"
g++ -std=c++20 -O2 -DCUSIM -fno-strict-aliasing -Wall -Wextra -Wno-unknown-pragmas \
    -I"$repo/src/main/cusim" -I"$repo/src/main/cuda" -I"$repo/src/test/cuda" -I"$cuda_inc" \
    "$out/cusim_selftest_registry.cpp" "$repo/src/main/cusim/cusim_runtime.cpp" \
    "$repo/src/test/cusim/selftest_main.cpp" -o "$out/cusim_selftest"
"$out/cusim_selftest"
