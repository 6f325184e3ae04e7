#!/usr/bin/env bash
# build-cusim.sh OUT_SO JAVA_HOME CU_FILE...
#
# Builds the CPU kernel simulator library (cusim) for the Java SimBackend: the generated kernel
# registry (all given .cu files compiled as C++ with -DCUSIM), the runtime and the JNI bridge,
# linked into one shared library with g++. Only the CUDA toolkit's headers are needed (half,
# bfloat16, vector types), no GPU and no nvcc invocation.
set -euo pipefail

die() { echo "build-cusim.sh: $*" >&2; exit 1; }
[[ $# -ge 2 ]] || die "usage: build-cusim.sh OUT_SO JAVA_HOME CU_FILE..."
out_so=$1
java_home=$2
shift 2

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cusim_src=$repo/src/main/cusim

command -v g++ >/dev/null || die "g++ not found on PATH (needed to build the CPU kernel simulator)"

# CUDA headers: next to nvcc (bin/../include), else $CUDA_HOME, else /usr/local/cuda.
cuda_inc=
candidates=()
if nvcc_path=$(command -v nvcc); then candidates+=("$(dirname "$(readlink -f "$nvcc_path")")/../include"); fi
[[ -n ${CUDA_HOME:-} ]] && candidates+=("$CUDA_HOME/include")
candidates+=(/usr/local/cuda/include)
for c in "${candidates[@]}"; do
    if [[ -f $c/cuda_fp16.h ]]; then cuda_inc=$(cd "$c" && pwd); break; fi
done
[[ -n $cuda_inc ]] || die "CUDA headers not found (no cuda_fp16.h next to nvcc, in \$CUDA_HOME or /usr/local/cuda/include)"
[[ -f $java_home/include/jni.h ]] || die "jni.h not found in $java_home/include (is $java_home a JDK?)"

out_dir=$(mkdir -p "$(dirname "$out_so")" && cd "$(dirname "$out_so")" && pwd)
build_dir=${CUSIM_BUILD_DIR:-$out_dir/cusim-build}
mkdir -p "$build_dir"
registry=$build_dir/cusim_registry.cpp
"$repo/native-build/gen-cusim-registry.sh" "$registry" "$@"

includes=(-I"$cusim_src" -I"$cuda_inc" -I"$java_home/include" -I"$java_home/include/linux")
declare -A seen=()
for f in "$@"; do
    d=$(cd "$(dirname "$f")" && pwd)
    if [[ -z ${seen[$d]:-} ]]; then includes+=(-I"$d"); seen[$d]=1; fi
done

# -fno-strict-aliasing: kernels reinterpret shared/global bytes freely, as nvcc tolerates.
# -fvisibility=hidden: only the JNI functions are exported.
tmp_so=$build_dir/$(basename "$out_so").tmp
g++ -std=c++20 -O2 -fPIC -shared -DCUSIM -fvisibility=hidden -fno-strict-aliasing \
    -Wall -Wno-unknown-pragmas "${includes[@]}" \
    "$registry" "$cusim_src/cusim_runtime.cpp" "$cusim_src/cusim_jni.cpp" \
    -o "$tmp_so"
mv "$tmp_so" "$out_so"
