#!/bin/sh
# The tour of `cargo xtask demo` without a terminal: list the share, write a file the host reads
# back, read the README the host wrote. Writes "pass N fail N skip 0" to $RESULT.
pass=0
fail=0
step() {
    echo "guest\$ $1"
    if sh -c "$1"; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "E2E-FAIL demo $1"; fi
}
step 'ls -la /mnt'
step 'echo "hello from the guest, Linux $(uname -r)" > /mnt/hello-from-guest.txt'
step 'cat /mnt/README.txt'
echo "pass $pass fail $fail skip 0" > "$RESULT"
