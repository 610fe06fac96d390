#!/bin/bash
# Model check of the shm-signal handshake (tests/model/signal.pml) with spin: no lost
# wake-up in the real protocol, and spin does find the one in the broken variant (no
# re-check after announcing the sleep), so that this check can fail.
# timeout: 120
top=${VBUS_TOP:-$(cd "$(dirname "$0")/../.." && pwd)}
command -v spin >/dev/null || { echo "spin is not installed (make deps)"; exit 77; }
command -v cc >/dev/null || { echo "no C compiler for spin's verifier"; exit 77; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cp "$top/tests/model/signal.pml" "$tmp/"
cd "$tmp" || exit 1
verify() { # DEFINES...: print spin's error count
	rm -f pan* ./*.trail
	spin -a "$@" signal.pml >/dev/null || { echo "spin -a failed"; exit 1; }
	cc -O2 -DSAFETY -o pan pan.c 2>/dev/null || { echo "pan did not compile"; exit 1; }
	./pan -m100000 >out.txt 2>&1
	sed -n 's/.*errors: \([0-9]*\).*/\1/p' out.txt | head -n1
}
good=$(verify)
states=$(sed -n 's/^ *\([0-9e.+]*\) states, stored.*/\1/p' out.txt | head -n1)
[ "$good" = 0 ] || { echo "FAIL: spin found $good error(s) in the real protocol:"; cat out.txt; exit 1; }
echo "ok   real handshake: 0 errors over $states states"
bad=$(verify -DBROKEN)
[ -n "$bad" ] && [ "$bad" -gt 0 ] || { echo "FAIL: spin did not find the lost wake-up of the broken variant"; cat out.txt; exit 1; }
echo "ok   broken variant (no re-check): spin finds the lost wake-up ($bad error)"
