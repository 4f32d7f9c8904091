#!/bin/sh
# Smoke suite: each basic operation on the virtio-fs mount, checked. Writes
# "pass N fail N skip N" to $RESULT; each failure prints "E2E-FAIL smoke <what>".
pass=0
fail=0
out=/tmp/smoke.out

# check DESCRIPTION SHELL-CODE: the code must succeed.
# The code runs under set -e in a subshell (not in an if: that would disable set -e).
check() {
    (set -e; eval "$2") >"$out" 2>&1
    if [ $? = 0 ]; then
        pass=$((pass + 1))
    else
        fail=$((fail + 1))
        echo "E2E-FAIL smoke $1"
        sed 's/^/    /' "$out"
    fi
}
# eq EXPECTED ACTUAL: string equality, with a message.
eq() {
    [ "$1" = "$2" ] || { echo "expected '$1', got '$2'"; return 1; }
}

D=/mnt/smoke
rm -rf "$D"

check "mount is virtiofs" 'grep -q " /mnt virtiofs " /proc/mounts'
check "read a file the host wrote" 'eq "hello from the host" "$(cat /mnt/host-seed.txt)"'
check "mkdir" 'mkdir "$D" && [ -d "$D" ]'
check "create empty file" ': > "$D/f" && [ -f "$D/f" ] && eq 0 "$(stat -c %s "$D/f")"'
check "write and read" 'echo one > "$D/f" && eq one "$(cat "$D/f")"'
check "append" 'echo two >> "$D/f" && eq 2 "$(wc -l < "$D/f")" && eq two "$(tail -n 1 "$D/f")"'
check "overwrite in place" 'printf XY | dd of="$D/f" bs=1 seek=1 conv=notrunc 2>/dev/null && eq oXY "$(head -n 1 "$D/f")"'
check "large write, read back" '
    dd if=/dev/urandom of=/tmp/big bs=65536 count=64 2>/dev/null
    cp /tmp/big "$D/big"
    eq "$(md5sum < /tmp/big)" "$(md5sum < "$D/big")"'
check "read back after dropping caches" '
    sync; echo 3 > /proc/sys/vm/drop_caches
    eq "$(md5sum < /tmp/big)" "$(md5sum < "$D/big")"
    eq 4194304 "$(stat -c %s "$D/big")"'
check "rename" 'mv "$D/f" "$D/g" && [ ! -e "$D/f" ] && eq oXY "$(head -n 1 "$D/g")"'
check "rename over an existing file" '
    echo victim > "$D/v"; echo winner > "$D/w"; mv "$D/w" "$D/v"
    eq winner "$(cat "$D/v")"; [ ! -e "$D/w" ]'
check "rename a directory" 'mkdir "$D/d1" && touch "$D/d1/x" && mv "$D/d1" "$D/d2" && [ -f "$D/d2/x" ]'
check "hard link" '
    ln "$D/g" "$D/h"
    eq 2 "$(stat -c %h "$D/g")"
    eq "$(stat -c %i "$D/g")" "$(stat -c %i "$D/h")"
    eq oXY "$(head -n 1 "$D/h")"'
check "symlink" '
    ln -s g "$D/s"
    [ -L "$D/s" ]; eq g "$(readlink "$D/s")"; eq oXY "$(head -n 1 "$D/s")"'
check "chmod" 'chmod 640 "$D/g" && eq 640 "$(stat -c %a "$D/g")" && chmod 4755 "$D/g" && eq 4755 "$(stat -c %a "$D/g")"'
check "chown" 'chown 1000:1000 "$D/g" && eq 1000:1000 "$(stat -c %u:%g "$D/g")"'
check "set mtime" 'touch -d "2001-01-01 00:00:00" "$D/g" && eq 978307200 "$(stat -c %Y "$D/g")"'
check "truncate up" 'truncate -s 100000 "$D/g" && eq 100000 "$(stat -c %s "$D/g")"'
check "truncate down" 'truncate -s 3 "$D/g" && eq 3 "$(stat -c %s "$D/g")" && eq oXY "$(cat "$D/g")"'
check "mkfifo" 'mkfifo "$D/p" && [ -p "$D/p" ]'
check "fifo carries data" '(echo through > "$D/p" &) ; eq through "$(cat "$D/p")"'
check "readdir" 'eq "big d2 g h p s v" "$(ls "$D" | tr "\n" " " | sed "s/ $//")"'
check "unlink an open file" '
    echo kept > "$D/open"; exec 3< "$D/open"; rm "$D/open"
    [ ! -e "$D/open" ]; eq kept "$(cat <&3)"; exec 3<&-'
check "statfs" 'stat -f -c %b /mnt | grep -q "^[1-9]"'
check "remove files" 'rm "$D/g" "$D/h" "$D/s" "$D/p" "$D/v" "$D/big" && [ ! -e "$D/g" ] && [ ! -L "$D/s" ]'
check "rmdir" 'rm "$D/d2/x" && rmdir "$D/d2" && rmdir "$D" && [ ! -e "$D" ]'
check "rmdir of a non-empty directory fails" 'mkdir -p /mnt/ne/x && ! rmdir /mnt/ne 2>/dev/null && rm -r /mnt/ne'
check "leave a file for the host" 'echo "written by the guest" > /mnt/guest-witness.txt && sync'

echo "pass $pass fail $fail skip 0" > "$RESULT"
