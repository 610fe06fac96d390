#!/bin/bash
# Guests killed with SIGKILL at random points leave nothing behind (issue 13, point 1;
# docs/security.md). tests/guest/churn.c cycles through everything a guest does (device
# open, PD, ibv_reg_mr of 4 KiB to 1 MiB, CQ, two connected RC QPs, WRITEs and SENDs in
# flight, teardown); VBUS_CHURN_N guests (default 60 per backend in `make test`, 100
# until stop 38, for its time budget; `make soak` 1000 each) are started under
# vbus-run, VBUS_CHURN_PAR at a time (8), and each is killed at random: 0 to 0.75 s after
# its start for half of them (start-up), 0 to 1.5 s after its first phase line (main
# opened the device) for the other half: in a control call, in ibv_reg_mr, while posting or
# with traffic in flight. Afterwards:
#   - `rdma res show` (qp, cq, mr, pd, cm_id) is back to its baseline,
#   - vbusd's descriptors and threads are back to theirs, its RSS within 8 MiB of its
#     baseline (taken after one warm-up guest, so that first-use allocations are in it),
#   - with the kernel backend, the module's reference count (open descriptors) is back
#     to its baseline and `vbusctl res show` lists no guest (the module's counters
#     VBK_IOC_STATS exist only per live attachment),
#   - a new guest runs two full cycles, and vbusd answers.
# How many guests were killed in each phase is printed, from the cycles they finished.
# Then VBUS_CHURN_OPEN guests (default 16), one at a time, each only opening and closing the
# device (churn's "open" mode) and killed 0 to 0.4 s after its first open: vbusd's relay
# thread starts and stops with its users, and a guest dying in device open once hung vbusd
# there (the stop raced the thread's last wait).
# timeout: 600
# soak-timeout: 1500
. "${VBUS_TOP:?}/bench/lib/perftest.sh"
. "$VBUS_TOP/tests/lib/vbusd.sh"
pt_need_device
prog=${VBUS_BUILD:-$VBUS_TOP/build/default}/tests/guest/churn
[ -x "$prog" ] || { echo "FAIL: $prog not built"; exit 1; }
N=${VBUS_CHURN_N:-60}
PAR=${VBUS_CHURN_PAR:-8}
# Room for PAR guests being torn down while PAR more start.
VD_BUS_ARGS=${VD_BUS_ARGS:-max-guests 64}
vd_start t vrdma0 || exit 1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"; vd_stop >/dev/null 2>&1' EXIT
fail=0

vd_fds() { ls /proc/"$VD_PID"/fd 2>/dev/null | wc -l; }
vd_threads() { awk '/^Threads:/ { print $2 }' /proc/"$VD_PID"/status; }
vd_rss_kb() { awk '/^VmRSS:/ { print $2 }' /proc/"$VD_PID"/status; }
mod_ref() { cat /sys/module/vbus_vrdma/refcnt 2>/dev/null || echo -; }
state() { echo "res $(vd_res_counts) | fds $(vd_fds) threads $(vd_threads) | module refs $(mod_ref)"; }

# Warm-up: one guest to the end, one killed, so that what vbusd makes once (the relay
# thread, its epoll, the admin descriptor) is in the baseline.
"${VD_RUN[@]}" "$prog" vrdma0 "$VBUS_GID_INDEX" 1 >"$tmp/warm" 2>&1 ||
	{ echo "FAIL: a warm-up guest failed"; cat "$tmp/warm"; exit 1; }
"${VD_RUN[@]}" "$prog" vrdma0 "$VBUS_GID_INDEX" >/dev/null 2>&1 &
sleep 1
kill -KILL $! 2>/dev/null
wait $! 2>/dev/null
no_guest() { ! vd_ctl -j guest show 2>/dev/null | grep -q '"pid"'; }
vt_until 10 no_guest || { echo "FAIL: the warm-up guests are still attached"; exit 1; }
base=$(state)
base_rss=$(vd_rss_kb)
echo "baseline: $base | rss $base_rss KiB"

# One slot: N/PAR guests, one after the other, each killed at a random point: half of them
# (even i) 0 to 0.75 s after their start, which under TCG lands mostly in vbus-run, the loader
# and the library's start-up; the other half 0 to 1.5 s after their first phase line (main
# has opened the device), so that kills land in control calls, reg_mr and traffic.
slot() { # SLOT COUNT
	local s=$1 n=$2 i pid ms
	for ((i = 0; i < n; i++)); do
		"${VD_RUN[@]}" "$prog" vrdma0 "$VBUS_GID_INDEX" >"$tmp/g.$s.$i" 2>&1 &
		pid=$!
		# (a guest that never prints its first phase is killed when the wait ends)
		[ $((i % 2)) = 0 ] || vt_until 20 grep -q '^phase' "$tmp/g.$s.$i" || true
		ms=$(( (RANDOM * 32768 + RANDOM) % (i % 2 ? 1500 : 750) ))
		sleep "$(printf '%d.%03d' $((ms / 1000)) $((ms % 1000)))"
		if kill -KILL "$pid" 2>/dev/null; then
			echo killed >>"$tmp/g.$s.$i"
		fi
		wait "$pid" 2>/dev/null
	done
}
t0=$(date +%s%N)
slots=()
for ((s = 0; s < PAR; s++)); do
	slot "$s" $(( N / PAR + (s < N % PAR ? 1 : 0) )) &
	slots+=($!)
done
wait "${slots[@]}"	# the slots only: vbusd is a child of this shell too
t1=$(date +%s%N)
killed=$(grep -l '^killed' "$tmp"/g.* | wc -l)
early=$(grep -L '^killed' "$tmp"/g.* | wc -l)
c0=$(grep -l '^killed' "$tmp"/g.* | xargs grep -L '^cycle' | wc -l)
c1=$((killed - c0))
echo "$N guests in $(( (t1 - t0) / 1000000 )) ms, $PAR at a time: $killed killed" \
	"($c0 in their first cycle: start-up, first control calls, reg_mr, first traffic;" \
	"$c1 after one or more cycles), $early ended before their kill"
# Where the kills landed: the last phase each killed guest printed (none: in vbus-run or
# the loader, before main).
echo "killed in phase: $(for f in $(grep -l '^killed' "$tmp"/g.*); do
	grep '^phase' "$f" | tail -n1 | cut -d' ' -f2 | grep . || echo start-up
done | sort | uniq -c | awk '{ printf "%s %s, ", $2, $1 }' | sed 's/, $//')"
# Kills in device open and close: one guest at a time, so that each is the relay's last user.
NO=${VBUS_CHURN_OPEN:-16}
t0=$(date +%s%N)
for ((i = 0; i < NO; i++)); do
	"${VD_RUN[@]}" "$prog" vrdma0 "$VBUS_GID_INDEX" 0 open >"$tmp/o.$i" 2>&1 &
	pid=$!
	vt_until 20 grep -q '^phase' "$tmp/o.$i" || true
	ms=$(( (RANDOM * 32768 + RANDOM) % 400 ))
	sleep "$(printf '0.%03d' "$ms")"
	kill -KILL "$pid" 2>/dev/null && echo killed >>"$tmp/o.$i"
	wait "$pid" 2>/dev/null
	if ! vt_until 20 no_guest; then
		echo "FAIL: open-churn guest $i is still attached 20 s after its kill (vbusd hung?)"
		vd_stacks
		fail=1
		break
	fi
done
t1=$(date +%s%N)
okilled=$(grep -l '^killed' "$tmp"/o.* 2>/dev/null | wc -l)
echo "$NO open/close guests in $(( (t1 - t0) / 1000000 )) ms, one at a time: $okilled killed," \
	"after $(cat "$tmp"/o.* | grep -c '^phase open') device opens in all"
[ "$okilled" -ge $((NO * 9 / 10)) ] || { echo "FAIL: only $okilled of $NO open/close guests were killed"; fail=1; }
if grep -l FAIL "$tmp"/g.* "$tmp"/o.* >/dev/null 2>&1; then
	echo "FAIL: a guest failed on its own before it was killed:"
	grep -h FAIL "$tmp"/g.* "$tmp"/o.* | sort | uniq -c | head -5
	fail=1
fi
[ "$killed" -ge $((N * 9 / 10)) ] || { echo "FAIL: only $killed of $N guests were killed"; fail=1; }

# Everything the guests held is gone once vbusd has seen them go.
settled() { [ "$(state)" = "$base" ]; }
if vt_until 20 settled; then
	echo "ok   after $killed SIGKILLs: $(state)"
else
	echo "FAIL after $killed SIGKILLs: $(state); baseline $base"
	vd_ctl res show 2>&1 | head -20 | sed 's/^/  res| /'
	vd_ctl guest show 2>&1 | head -20 | sed 's/^/  guest| /'
	vd_stacks
	fail=1
fi
rss=$(vd_rss_kb)
if [ "$rss" -le $((base_rss + 8192)) ]; then
	echo "ok   vbusd's RSS $rss KiB (baseline $base_rss KiB)"
else
	echo "FAIL vbusd's RSS $rss KiB, baseline $base_rss KiB: more than 8 MiB grown"; fail=1
fi
if vd_ctl res show 2>/dev/null | grep -q 'backend kernel'; then
	echo "FAIL: vbusctl res show still lists a kernel attachment"; fail=1
fi

# vbusd still serves: a new guest runs two full cycles.
if timeout -k 2 "$(vt_secs 30)" "${VD_RUN[@]}" "$prog" vrdma0 "$VBUS_GID_INDEX" 2 >"$tmp/after" 2>&1; then
	echo "ok   a new guest after the churn: $(tail -n1 "$tmp/after")"
else
	echo "FAIL a new guest after the churn:"; cat "$tmp/after"; fail=1
fi
kill -0 "$VD_PID" 2>/dev/null || { echo "FAIL: vbusd died"; fail=1; }
exit $fail
