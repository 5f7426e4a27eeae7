#!/bin/sh
# Debian's python3-torch links the reference BLAS (libblas3): ~6 GFLOP/s on this machine. Run a
# command against OpenBLAS instead (~40x faster matmuls) without touching system alternatives:
# fetch Debian's libopenblas0-openmp once, unpack it under tools/pretrain/.openblas (git-ignored)
# and put its libblas.so.3/liblapack.so.3 first on LD_LIBRARY_PATH.
#   tools/pretrain/with_openblas.sh /usr/bin/python3 tools/pretrain/train.py ...
set -e
here=$(cd "$(dirname "$0")" && pwd)
dir="$here/.openblas"
lib="$dir/root/usr/lib/x86_64-linux-gnu/openblas-openmp"
if [ ! -f "$lib/libblas.so.3" ]; then
  mkdir -p "$dir"
  (cd "$dir" && apt-get download libopenblas0-openmp >/dev/null && dpkg -x libopenblas0-openmp_*.deb root)
fi
export LD_LIBRARY_PATH="$lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-PASSIVE}"
exec "$@"
