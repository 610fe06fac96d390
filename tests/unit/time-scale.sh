#!/bin/bash
# Time limits scale with the machine (tests/lib/time.sh, tests/lib/vt-time.h): the factor
# is never below the floor (VBUS_TIME_SCALE=0.01 is raised to it), a larger one is taken,
# junk is refused, an unset one is measured; vt_secs, vt_until and vt_wait_for; the C
# header agrees; and tests/run multiplies a `# timeout:` header by the factor (a test that
# needs 2 s passes under `# timeout: 1` at x3, and is killed at 3 s when it needs more).
# timeout: 60
top=${VBUS_TOP:-$(cd "$(dirname "$0")/../.." && pwd)}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail=0
ok() { echo "ok   $*"; }
bad() { echo "FAIL $*"; fail=1; }
# scale_of VALUE: VBUS_TIME_SCALE after vt_scale in a fresh shell, and its messages
scale_of() { VBUS_TIME_SCALE=$1 VT_NO_AUTO=1 bash -c '. "$1"; vt_scale; r=$?; echo "$VBUS_TIME_SCALE"; exit $r' _ "$top/tests/lib/time.sh" 2>&1; }

out=$(scale_of 0.01); rc=$?
[ $rc = 0 ] && [ "$(tail -n1 <<<"$out")" = 3 ] && grep -q 'below the floor 3' <<<"$out" &&
	ok "VBUS_TIME_SCALE=0.01 is not taken: raised to the floor 3, saying so" || bad "0.01: rc $rc, '$out'"
out=$(scale_of 20); [ "$out" = 20 ] && ok "VBUS_TIME_SCALE=20 is taken" || bad "20: '$out'"
out=$(scale_of 4.5); [ "$out" = 4.5 ] && ok "VBUS_TIME_SCALE=4.5 is taken" || bad "4.5: '$out'"
out=$(scale_of fast); rc=$?
[ $rc = 2 ] && grep -q 'not a number' <<<"$out" && ok "VBUS_TIME_SCALE=fast is refused" || bad "fast: rc $rc '$out'"
out=$(VBUS_TIME_SCALE=fast "$top/tests/run" --unit -k no-such-test 2>&1); rc=$?
[ $rc = 2 ] && ok "tests/run refuses it too (exit 2)" || bad "tests/run with VBUS_TIME_SCALE=fast: rc $rc '$out'"
out=$(env -u VBUS_TIME_SCALE bash -c '. "$1"; echo "$VBUS_TIME_SCALE|$VT_SCALE_WHY"' _ "$top/tests/lib/time.sh")
s=${out%%|*}
awk -v s="$s" 'BEGIN{exit !(s >= 3)}' && grep -q 'calibration:' <<<"$out" &&
	ok "unset: measured, x$s (${out#*|})" || bad "unset: '$out'"

export VBUS_TIME_SCALE=20
. "$top/tests/lib/time.sh"
[ "$(vt_secs 60)" = 1200 ] && [ "$(vt_secs 0.5)" = 10 ] && [ "$(vt_secs 0.01)" = 1 ] &&
	ok "vt_secs at x20: 60 -> 1200, 0.5 -> 10, 0.01 -> 1" || bad "vt_secs at x20: $(vt_secs 60) $(vt_secs 0.5)"
export VBUS_TIME_SCALE=3
t0=$(vt_now_us)
vt_until 0.2 false; rc=$?
ms=$(( ($(vt_now_us) - t0) / 1000 ))
[ $rc = 1 ] && [ $ms -ge 550 ] && [ $ms -lt 3000 ] && ok "vt_until 0.2 at x3 gives up after $ms ms" ||
	bad "vt_until 0.2 false: rc $rc after $ms ms"
(sleep 0.3; echo ready >"$tmp/f") &
vt_wait_for "$tmp/f" '^ready$' 5 && ok "vt_wait_for sees a line written later" || bad "vt_wait_for missed 'ready'"
wait
sleep 0.1 &
pid=$!
t0=$(vt_now_us)
vt_wait_for "$tmp/g" ready 20 $pid; rc=$?
ms=$(( ($(vt_now_us) - t0) / 1000 ))
[ $rc = 1 ] && [ $ms -lt 5000 ] && ok "vt_wait_for gives up at once ($ms ms) when the writer has exited" ||
	bad "vt_wait_for with a dead writer: rc $rc after $ms ms"

if command -v cc >/dev/null; then
	cat >"$tmp/c.c" <<'EOF'
#include <stdio.h>
#include "vt-time.h"
int main(void)
{
	printf("%d %.1f %u %.1f\n", vt_ms(1000), vt_secs(2), vt_alarm_secs(10), vt_secs_below(1, 2.5));
	return 0;
}
EOF
	if cc -I"$top/tests/lib" -o "$tmp/c" "$tmp/c.c"; then
		a=$(VBUS_TIME_SCALE=0.01 "$tmp/c") b=$(VBUS_TIME_SCALE=20 "$tmp/c") c=$(env -u VBUS_TIME_SCALE "$tmp/c")
		d=$(VBUS_TIME_SCALE=x "$tmp/c")
		[ "$a" = "3000 6.0 30 2.5" ] && [ "$b" = "20000 40.0 200 2.5" ] && [ "$c" = "$a" ] && [ "$d" = "$a" ] &&
			ok "vt-time.h: the floor below 3, unset or junk ($a); x20 ($b)" ||
			bad "vt-time.h: 0.01 '$a', 20 '$b', unset '$c', junk '$d'"
	else
		bad "vt-time.h does not compile"
	fi
fi

# tests/run: `# timeout: 1` at x3 is a 3 s limit.
mkdir -p "$tmp/dev" "$tmp/out"
printf '#!/bin/bash\n# timeout: 1\nsleep 2\n' >"$tmp/dev/ts-fake-2s.sh"
printf '#!/bin/bash\n# timeout: 1\nsleep 30\n' >"$tmp/dev/ts-fake-hang.sh"
t0=$(vt_now_us)
VBUS_TIME_SCALE=3 KL_DMESG=true KL_KMSG=/dev/null VBUS_TEST_DEVICE_DIR=$tmp/dev \
	"$top/tests/run" --inside "$tmp/out" -k ts-fake >"$tmp/run.out" 2>&1
ms=$(( ($(vt_now_us) - t0) / 1000 ))
sed 's/^/  run| /' "$tmp/run.out"
res=$(sort "$tmp/out/results" 2>/dev/null | tr '\n' ' ')
if [ "$res" = "FAIL device/ts-fake-hang PASS device/ts-fake-2s " ] && [ $ms -lt 20000 ] &&
	grep -q 'killed after the 3 s limit: 1 s x VBUS_TIME_SCALE 3' "$tmp/out/logs/device_ts-fake-hang.log"; then
	ok "tests/run: '# timeout: 1' at x3 lets a 2 s test pass and stops a hang at 3 s"
else
	bad "tests/run with '# timeout: 1' at x3: '$res' in $ms ms"
fi
exit $fail
