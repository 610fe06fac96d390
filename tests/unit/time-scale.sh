#!/bin/bash
# Time limits scale with the machine (tests/lib/time.sh, tests/lib/vt-time.h): the factor
# is never below the floor (VBUS_TIME_SCALE=0.01 is raised to it), a larger one is taken,
# junk is refused, an unset one is measured; vt_secs, vt_until and vt_wait_for; the C
# header agrees; and tests/run multiplies a `# timeout:` header by the factor (a test that
# needs 2 s passes under `# timeout: 1` at x3, and is killed at 3 s when it needs more);
# under VBUS_SOAK=1 a `# soak-timeout:` replaces it; and tests/run --budget ends the whole
# run in time (a test that would run past it is killed, the next one is not run, both fail,
# the summary is printed); a `# soak-only:` script is in a run only under VBUS_SOAK=1 or -k.
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

# VBUS_SOAK=1: `# soak-timeout: 10` at x3 lets a 4 s test pass that `# timeout: 1` would stop.
mkdir -p "$tmp/soak" "$tmp/sout"
printf '#!/bin/bash\n# timeout: 1\n# soak-timeout: 10\nsleep 4\n' >"$tmp/soak/ts-fake-soak.sh"
VBUS_SOAK=1 VBUS_TIME_SCALE=3 KL_DMESG=true KL_KMSG=/dev/null VBUS_TEST_DEVICE_DIR=$tmp/soak \
	"$top/tests/run" --inside "$tmp/sout" -k ts-fake >"$tmp/soak.out" 2>&1
res=$(cat "$tmp/sout/results" 2>/dev/null)
[ "$res" = "PASS device/ts-fake-soak" ] && ok "tests/run: VBUS_SOAK=1 takes '# soak-timeout: 10' over '# timeout: 1'" ||
	bad "tests/run with VBUS_SOAK=1 and '# soak-timeout: 10': '$res'"

# --budget 15: a 1 s test passes, a hang (its own limit 300 s) is killed by about 15 s, the test
# after it is not run; the summary line is printed.
mkdir -p "$tmp/bud" "$tmp/bout"
printf '#!/bin/bash\nsleep 1\n' >"$tmp/bud/ts-fake-a.sh"
printf '#!/bin/bash\n# timeout: 100\nsleep 60\n' >"$tmp/bud/ts-fake-b.sh"
printf '#!/bin/bash\nexit 0\n' >"$tmp/bud/ts-fake-c.sh"
t0=$(vt_now_us)
VBUS_TIME_SCALE=3 KL_DMESG=true KL_KMSG=/dev/null VBUS_TEST_DEVICE_DIR=$tmp/bud \
	"$top/tests/run" --inside "$tmp/bout" --budget 15 -k ts-fake >"$tmp/bud.out" 2>&1
ms=$(( ($(vt_now_us) - t0) / 1000 ))
sed 's/^/  run| /' "$tmp/bud.out"
res=$(tr '\n' ' ' <"$tmp/bout/results" 2>/dev/null)
if [ "$res" = "PASS device/ts-fake-a FAIL device/ts-fake-b FAIL device/ts-fake-c " ] && [ $ms -lt 40000 ] &&
	grep -q "the run's time budget was spent; its own limit is 100 s" "$tmp/bout/logs/device_ts-fake-b.log" &&
	grep -q "not run: the run's time budget was spent" "$tmp/bout/logs/device_ts-fake-c.log"; then
	ok "tests/run --budget 15: a hang is killed when the budget ends (not at its 300 s), the next test fails as not run ($ms ms)"
else
	bad "tests/run --budget 15: '$res' in $ms ms"
fi
# `# soak-only:`: not listed by a plain run nor by a -k that does not name it; listed under
# VBUS_SOAK=1 and by a -k that names it; the others always.
mkdir -p "$tmp/so"
printf '#!/bin/bash\n# soak-only: long\nexit 0\n' >"$tmp/so/ts-fake-long.sh"
printf '#!/bin/bash\nexit 0\n' >"$tmp/so/ts-fake-short.sh"
so() { VBUS_TEST_DEVICE_DIR=$tmp/so "$top/tests/run" --inside "$tmp/sout" --list "$@" 2>&1 | grep ts-fake | tr '\n' ' '; }
r1=$(so -k ts-fake-s) r2=$(so -k ts-fake) r3=$(VBUS_SOAK=1 so -k ts-fake-s) r4=$(so -k ts-fake-long) r5=$(VBUS_SOAK=1 so)
if [ "$r1" = "device/ts-fake-short " ] && [ "$r2" = "device/ts-fake-long device/ts-fake-short " ] &&
	[ "$r3" = "device/ts-fake-short " ] && [ "$r4" = "device/ts-fake-long " ] &&
	[ "$r5" = "device/ts-fake-long device/ts-fake-short " ]; then
	ok "tests/run: a '# soak-only:' test runs under VBUS_SOAK=1 or when -k names it, not otherwise"
else
	bad "tests/run and '# soak-only:': '$r1' '$r2' '$r3' '$r4' '$r5'"
fi
plain=$(so)
[ "$plain" = "device/ts-fake-short " ] && ok "tests/run: a plain run leaves a '# soak-only:' test out" ||
	bad "tests/run without -k lists '$plain'"
# `# soak-backends:` replaces `# backends:` under VBUS_SOAK=1 only.
mkdir -p "$tmp/sb"
printf '#!/bin/bash
# backends: relay
# soak-backends: relay kernel
exit 0
' >"$tmp/sb/ts-fake-nest.sh"
sb() { VBUS_TEST_DEVICE_DIR=$tmp/sb "$top/tests/run" --inside "$tmp/sbout" --list "$@" 2>&1 | grep ts-fake | tr '\n' ' '; }
b1=$(sb) b2=$(VBUS_SOAK=1 sb)
if [ "$b1" = "device/ts-fake-nest[relay] " ] && [ "$b2" = "device/ts-fake-nest[relay] device/ts-fake-nest[kernel] " ]; then
	ok "tests/run: '# soak-backends:' adds the kernel variant under VBUS_SOAK=1 only"
else
	bad "tests/run and '# soak-backends:': '$b1' '$b2'"
fi

out=$("$top/tests/run" --budget 1x --list 2>&1); rc=$?
[ $rc = 2 ] && ok "tests/run --budget 1x is refused (exit 2)" || bad "tests/run --budget 1x: rc $rc '$out'"
exit $fail
