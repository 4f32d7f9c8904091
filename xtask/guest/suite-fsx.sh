#!/bin/sh
# fsx on a file of /mnt: FSX_OPS operations (default 10000) with a fixed seed, the operation
# mix of /e2e/fsx.toml. Writes "pass 1 fail 0 skip 0" to $RESULT when fsx exits 0.
ops=${FSX_OPS:-10000}
seed=${FSX_SEED:-20240501}
dir=/mnt/fsx
rm -rf "$dir"
mkdir -p "$dir"
cd /tmp
fsx -N "$ops" -S "$seed" -f /e2e/fsx.toml -P /tmp "$dir/testfile" > /tmp/fsx.log 2>&1
code=$?
echo "E2E-INFO fsx $ops operations, seed $seed, exit code $code"
if [ "$code" = 0 ]; then
    rm -rf "$dir"
    echo "pass 1 fail 0 skip 0" > "$RESULT"
else
    echo "E2E-FAIL fsx exit code $code (seed $seed)"
    tail -n 40 /tmp/fsx.log | sed 's/^/    /'
    echo "pass 0 fail 1 skip 0" > "$RESULT"
fi
