#!/bin/bash
# More of unmodified Debian perftest in process guests: atomics bandwidth, UC, many QPs,
# event mode (-e: completion channels) of each family, and both post APIs. Each case runs
# natively first (the control, which must pass too), then guest client to native server,
# native to guest, guest to guest; every run must finish on both sides with a positive
# figure ("clock" where perftest could not calibrate its clock under TCG: the run finished, no
# time was measured). The figures are printed side by side (one run each, not judged:
# timings here are noise; bench/ measures). The native controls run once per suite
# (vd_controls, tests/lib/vbusd.sh): with the module loaded, the relay variant prints "ctl"
# in their column, the kernel variant ran them. make test runs the kernel variant only
# (the relay's, `make soak`: guest to guest only, the relay on both sides, printing "soak"
# in the mixed columns; guest-perftest runs the relay's mixed paths); the kernel variant
# runs one mixed path a case, guest>nat and
# nat>guest in turn ("soak" in the other; which case gets which swaps with
# VBUS_MATRIX_PHASE, by default the day's parity, printed); VBUS_FULL=1 (make soak) runs
# every path on every backend.
# perftest 4.5-0.17 has no --use_new_send: the new API (ibv_wr_*) is its default, and
# --use_old_post_send selects ibv_post_send; both are run. Its WRITE family has no event
# mode ("Events feature not available on WRITE verb", natively too).
# timeout: 300
# soak-timeout: 1200
# backends: kernel
# soak-backends: kernel relay
top=${VBUS_TOP:-$(cd "$(dirname "$0")/../.." && pwd)}
. "$top/bench/lib/perftest.sh"
. "$top/tests/lib/vbusd.sh"
pt_need_device
vd_start t vrdma0 || exit 1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"; vd_stop' EXIT
fail=0
rows=()
ncase=0
# Which mixed path a case gets in make test's kernel variant: VBUS_MATRIX_PHASE (0 or 1),
# by default the day of the year's parity, so that each case meets both over the days.
phase=${VBUS_MATRIX_PHASE:-$(( 10#$(date +%j) % 2 ))}
case $phase in 0|1) ;; *) echo "FAIL: VBUS_MATRIX_PHASE=$phase: 0 or 1"; exit 1 ;; esac

# one PATH FIELD TOOL ARGS...: prints the figure, or FAIL and the logs. UC and UD do not
# retransmit: one message lost (natively too, under load) and perftest's receiver waits for
# it until its limit. A case on them that fails gets a second try, said on stderr.
one() {
	local path=$1 field=$2 tool=$3 v tries=1
	shift 3
	vd_as ${path/-/ }
	[[ " $* " == *" -c U"[CD]" "* ]] && tries=2
	while :; do
		if pt_run "$tool" "$tmp/o" "$@" >"$tmp/log" 2>&1 && v=$(pt_figure "$tmp/o" "$field"); then
			echo "$v"
			return 0
		fi
		tries=$((tries - 1))
		[ $tries -gt 0 ] || break
		echo "retry $tool $* ($path): failed once on an unreliable transport, second try" >&2
		sed 's/^/  | /' "$tmp/log" | tail -n 12 >&2
	done
	{
		echo "FAIL $tool $* ($path)"
		echo "  harness:"; sed 's/^/  | /' "$tmp/log" | tail -n 15
		echo "  client:"; sed 's/^/  | /' "$tmp/o" 2>/dev/null | tail -n 15
		echo "  server:"; sed 's/^/  | /' "$tmp/o.server" 2>/dev/null | tail -n 15
	} >&2
	echo "-"
	return 1
}

# case FIELD TOOL ARGS...: the four paths of one perftest case.
case_() {
	local field=$1 tool=$2 row p v skip
	shift 2
	# VBUS_MATRIX_CASES=REGEX runs only the matching cases (to chase one by hand).
	[ -z "${VBUS_MATRIX_CASES:-}" ] || [[ "$tool $*" =~ $VBUS_MATRIX_CASES ]] || return 0
	row=$(printf '%-46s' "$tool $*")
	ncase=$((ncase + 1))
	for p in native-native guest-native native-guest guest-guest; do
		skip=
		if ! vd_controls; then
			[ $p = guest-guest ] || skip=$([ $p = native-native ] && echo ctl || echo soak)
		elif [ "${VBUS_FULL:-0}" != 1 ]; then	# one mixed path a case, in turn
			case $p in
			guest-native) [ $(((ncase + phase) % 2)) = 1 ] || skip=soak ;;
			native-guest) [ $(((ncase + phase) % 2)) = 0 ] || skip=soak ;;
			esac
		fi
		if [ -n "$skip" ]; then
			row+=$(printf ' %12s' "$skip")
			continue
		fi
		v=$(one "$p" "$field" "$tool" "$@") || fail=1
		row+=$(printf ' %12s' "$v")
	done
	echo "$row"
	rows+=("$row")
}

if vd_controls && [ "${VBUS_FULL:-0}" != 1 ]; then
	echo "one mixed path a case, in turn: phase $phase (VBUS_MATRIX_PHASE; VBUS_FULL=1 runs both)"
fi
printf '%-46s %12s %12s %12s %12s\n' "case (t_typical us, or BW MB/s)" native guest\>nat nat\>guest guest\>guest
case_ bw_avg_MBps ib_atomic_bw -n 300
case_ t_typical_us ib_atomic_lat -n 300 --use_old_post_send
case_ t_typical_us ib_write_lat -c UC -n 300
case_ bw_avg_MBps ib_write_bw -c UC -s 4096 -n 300
case_ t_typical_us ib_send_lat -n 300 --use_old_post_send
case_ bw_avg_MBps ib_write_bw -s 4096 -n 300 --use_old_post_send
case_ bw_avg_MBps ib_send_bw -q 8 -s 4096 -n 300
case_ bw_avg_MBps ib_write_bw -q 16 -s 4096 -n 300
# Event mode (-e): the client sleeps on its completion channel.
case_ t_typical_us ib_send_lat -e -n 300
case_ t_typical_us ib_read_lat -e -n 300
case_ t_typical_us ib_atomic_lat -e -n 300
case_ bw_avg_MBps ib_send_bw -e -s 4096 -n 300
case_ bw_avg_MBps ib_read_bw -e -s 4096 -n 300
case_ bw_avg_MBps ib_atomic_bw -e -n 300
case_ t_typical_us ib_send_lat -c UD -e -n 300
case_ bw_avg_MBps ib_send_bw -c UD -e -n 300
case_ bw_avg_MBps ib_send_bw -c UC -e -s 4096 -n 300
[ $fail = 0 ] && echo "all cases passed on every path run"
exit $fail
