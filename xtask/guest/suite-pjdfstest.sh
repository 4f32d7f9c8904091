#!/bin/sh
# pjdfstest on /mnt with the configuration /e2e/pjdfstest.toml (utimensat, UTIME_NOW and
# posix_fallocate enabled). Writes "pass N fail N skip N" to $RESULT from its summary line
# ("Summary: F failed, S skipped, P passed, E expected failures, T total").
log=/tmp/pjdfstest.log
cd /tmp
pjdfstest -c /e2e/pjdfstest.toml -p /mnt > "$log" 2>&1
code=$?
grep -E "FAILED|PASSED UNEXPECTEDLY" "$log" | while read -r name rest; do
    echo "E2E-FAIL pjdfstest $name $rest"
done
# Failure details (the indented lines after a FAILED one) for the console log.
awk '/FAILED|PASSED UNEXPECTEDLY/ { show = 1; print "    " $0; next }
     /^[^ \t]/ { show = 0 }
     show { print "    " $0 }' "$log" | head -n 200
# The whole run, indented, for the console log (the host only reads E2E- lines).
sed 's/^/    /' "$log"
summary=$(grep "^Summary:" "$log" | tail -n 1)
echo "E2E-INFO pjdfstest ${summary:-no summary line, exit code $code}"
if [ -z "$summary" ]; then
    tail -n 20 "$log" | sed 's/^/    /'
    exit 1
fi
echo "$summary" | awk '{
    for (i = 1; i <= NF; i++) {
        gsub(",", "", $i)
        if ($(i + 1) ~ /^failed/) f = $i
        if ($(i + 1) ~ /^skipped/) s = $i
        if ($(i + 1) ~ /^passed/) p = $i
    }
    printf "pass %d fail %d skip %d\n", p, f, s
}' > "$RESULT"
