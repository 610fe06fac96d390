#!/bin/bash
# A guest that never acknowledges its CQ events blocks only itself (tests/guest/failures.c
# noack). Program A takes a CQ event and never acknowledges it (nor polls the CQ); its
# ibv_destroy_cq (in a thread) then blocks, natively and as a guest, until the event is
# acknowledged. While guest A holds it, two other guests run ibv_rc_pingpong through the
# same vbusd and complete; A then acknowledges and its destroy returns, as natively. Then
# A holds again and is killed (SIGKILL): vbusd still answers `vbusctl res show` without A's
# objects, and a new guest pair runs ibv_rc_pingpong.
# timeout: 240
. "${VBUS_TOP:?}/bench/lib/perftest.sh"
. "$VBUS_TOP/tests/lib/vbusd.sh"
. "$VBUS_TOP/tests/lib/pingpong.sh"
. "$VBUS_TOP/tests/lib/failures.sh"
fl_need
vd_start t vrdma0 || exit 1
trap 'rm -rf "$FL_OUT"; vd_stop' EXIT
fail=0

# start_a OUT CMD...: run CMD in the background until it prints "holding pid N"; sets A_PID
# (the program's own pid, which vbus-run may not be) and A_JOB.
start_a() {
	local out=$1
	shift
	timeout -k 2 "$(vt_secs 120)" "$@" >"$out" 2>&1 &
	A_JOB=$!
	vt_wait_for "$out" '^holding pid' 20 $A_JOB
	A_PID=$(sed -n 's/^holding pid //p' "$out")
	[ -n "$A_PID" ] || { echo "FAIL: A did not get to hold its event"; cat "$out"; return 1; }
}

echo "--- native: A holds an unacknowledged CQ event, then acknowledges it"
start_a "$FL_OUT/native" "$FL_PROG" noack "$VBUS_RXE" || exit 1
kill -USR1 "$A_PID"
wait "$A_JOB" || { echo "FAIL: native A exit $?"; fail=1; }

echo "--- guest: the same, with two other guests running ibv_rc_pingpong meanwhile"
start_a "$FL_OUT/guest" "${VD_RUN[@]}" "$FL_PROG" noack "$VD_DEV" || exit 1
vd_as guest guest
if pp_run ibv_rc_pingpong 200 >"$FL_OUT/pp" 2>&1; then
	echo "ok   guest-to-guest ibv_rc_pingpong (200 iterations) completed while A held its event"
else
	cat "$FL_OUT/pp"; echo "FAIL: ibv_rc_pingpong while A held its event"; fail=1
fi
kill -0 "$A_PID" 2>/dev/null && echo "ok   A is still holding (its destroy blocked)" ||
	{ echo "FAIL: A is gone early"; fail=1; }
kill -USR1 "$A_PID"
wait "$A_JOB" || { echo "FAIL: guest A exit $?"; fail=1; }
fl_compare || fail=1

echo "--- guest A holds again and is killed"
start_a "$FL_OUT/killed" "${VD_RUN[@]}" "$FL_PROG" noack "$VD_DEV" || exit 1
kill -KILL "$A_PID"
{ wait "$A_JOB"; } 2>/dev/null	# it was killed: no job report
# shellcheck disable=SC2317	# called through vt_until
res_empty() { [ "$(vd_ctl -j res show | jq 'length')" = 0 ]; }
vt_until 5 res_empty	# vbusd notices the closed connection
res=$(vd_ctl -j res show)
if [ "$res" = "[]" ] && kill -0 "$VD_PID" 2>/dev/null; then
	echo "ok   vbusd answers; res show is empty after A was killed"
else
	echo "FAIL: vbusd after A was killed: res show '$res'"; fail=1
fi
if pp_run ibv_rc_pingpong 100 >"$FL_OUT/pp" 2>&1; then
	echo "ok   a new guest pair runs ibv_rc_pingpong (100 iterations) afterwards"
else
	cat "$FL_OUT/pp"; echo "FAIL: ibv_rc_pingpong after A was killed"; fail=1
fi
exit $fail
