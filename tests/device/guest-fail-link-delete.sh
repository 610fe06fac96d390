#!/bin/bash
# `rdma link delete` of the backing device while programs hold it (tests/guest/failures.c
# fatal: a context, PD, MR, CQ and two connected RC QPs that carried a write).
# Native rxe0 first, for comparison (once per suite: vd_controls, tests/lib/vbusd.sh): Linux 6.1 rxe has no disassociate_ucontext, so the
# program gets no event, its verbs keep working, and the delete waits until it closes its
# context (FAIL_WAIT seconds). As a guest on vrdma0 the program must get
# IBV_EVENT_DEVICE_FATAL, its verbs must fail or return at once, never hang, the delete must
# finish without waiting for the guest, and vbusd must keep answering: vbusd notices the
# device is gone, removes vrdma0 from the bus and closes the guests' contexts, as a device
# that disassociates them would. rxe0 is added back afterwards (also on failure), ACTIVE with
# its GID, and vrdma0 on the new rxe0 serves a new guest. The guest's DEVICE_FATAL comes
# within 1 s (scaled) of the delete's start, and with rxe0 back `rdma res show` is at the
# baseline taken before vbusd started: the deleted device took every real object of the
# guest with it (the kernel backend's module releases them in its ib_client removal).
# (Time limits are multiplied by
# VBUS_TIME_SCALE, tests/lib/time.sh; the native FAIL_WAIT is a duration, not a limit.)
# timeout: 180
. "${VBUS_TOP:?}/bench/lib/perftest.sh"
. "$VBUS_TOP/tests/lib/vbusd.sh"
. "$VBUS_TOP/tests/lib/failures.sh"
fl_need
[ -n "${VBUS_NETDEV:-}" ] || { echo "no VBUS_NETDEV: run this under tests/vm/run"; exit 77; }
gidf=/sys/class/infiniband/$VBUS_RXE/ports/1/gids/$VBUS_GID_INDEX
gid0=$(cat "$gidf")

# rxe0 back on its netdev, port 1 ACTIVE with the GID it had (as tests/vm/guest-main waits).
restore() {
	[ -e "/sys/class/infiniband/$VBUS_RXE" ] ||
		timeout "$(vt_secs 30)" rdma link add "$VBUS_RXE" type rxe netdev "$VBUS_NETDEV"
	vt_until 15 rxe_back && return 0
	echo "rxe0 is not back: $(rdma link show 2>&1)"
	return 1
}
# shellcheck disable=SC2317	# called through vt_until
rxe_back() {
	[ "$(cat "/sys/class/infiniband/$VBUS_RXE/ports/1/state" 2>/dev/null)" = "4: ACTIVE" ] &&
		[ "$(cat "$gidf" 2>/dev/null)" = "$gid0" ]
}
trap 'restore; rm -rf "$FL_OUT"; vd_stop >/dev/null 2>&1' EXIT

# delete_under SIDE CMD...: start CMD (prints "ready"), delete rxe0 under it, wait for both.
# Sets DEL_RC and DEL_S (seconds the delete took), RC (the program's exit status).
delete_under() {
	local out=$FL_OUT/$1 job t0
	shift
	timeout -k 2 "$(vt_secs 60)" "$@" >"$out" 2>&1 &
	job=$!
	vt_wait_for "$out" '^ready' 20 $job || { cat "$out"; echo "FAIL: the program did not get ready"; exit 1; }
	t0=$(date +%s%N)
	DEL_T0=$t0
	timeout "$(vt_secs 60)" rdma link delete "$VBUS_RXE"
	DEL_RC=$?
	DEL_S=$(( ($(date +%s%N) - t0) / 1000000 ))
	DEL_S=$((DEL_S / 1000)).$(printf %03d $((DEL_S % 1000)))
	wait "$job"
	RC=$?
}

fail=0
if vd_controls; then	# the native comparison, once per suite (tests/lib/vbusd.sh)
	echo "--- native: rdma link delete under a program on $VBUS_RXE (it waits ${FAIL_WAIT:=4} s for an event)"
	export FAIL_WAIT
	delete_under native "$FL_PROG" fatal "$VBUS_RXE"
	echo "native: program exit $RC; rdma link delete exit $DEL_RC after $DEL_S s"
	sed 's/^/native| /' "$FL_OUT/native"
	restore || exit 1
else
	echo "--- native: the comparison runs in the kernel variant (vd_controls)"
fi

# The guest waits up to 30 s (scaled) for its event; a delete that waited for the guest to
# give up would take that long, so the delete must end in less than half of it.
gwait=$(vt_secs 30)
res0=$(vd_res_counts)
echo "--- guest: rdma link delete under a guest on vrdma0 (it waits up to $gwait s for the event; rdma res before: $res0)"
vd_start t vrdma0 || exit 1
trap 'restore; rm -rf "$FL_OUT"; vd_stop >/dev/null 2>&1' EXIT	# vd_start set its own
FAIL_WAIT=$gwait delete_under guest "${VD_RUN[@]}" "$FL_PROG" fatal "$VD_DEV"
echo "guest: program exit $RC; rdma link delete exit $DEL_RC after $DEL_S s"
sed 's/^/guest | /' "$FL_OUT/guest"
[ $RC = 0 ] || { echo "FAIL: the guest program exit $RC (124: it hung)"; fail=1; }
[ $DEL_RC = 0 ] || { echo "FAIL: rdma link delete exit $DEL_RC"; fail=1; }
[ "${DEL_S%.*}" -lt $((gwait / 2)) ] && echo "ok   the delete finished in $DEL_S s, without waiting for the guest to exit" ||
	{ echo "FAIL: the delete took $DEL_S s"; fail=1; }
if grep -q '^outcome: IBV_EVENT_DEVICE_FATAL: yes' "$FL_OUT/guest"; then
	at=$(sed -n 's/^fatal-at-ns: //p' "$FL_OUT/guest")
	ms=$(( (${at:-0} - DEL_T0) / 1000000 ))
	_vt_scaled_us lim 1
	lim=$((lim / 1000))
	if [ -n "$at" ] && [ "$ms" -le "$lim" ]; then
		echo "ok   the guest got IBV_EVENT_DEVICE_FATAL $ms ms after the delete began (limit 1 s scaled: $lim ms)"
	else
		echo "FAIL: IBV_EVENT_DEVICE_FATAL came $ms ms after the delete began (limit 1 s scaled: $lim ms)"; fail=1
	fi
else
	echo "FAIL: the guest got no IBV_EVENT_DEVICE_FATAL"; fail=1
fi
grep -q '^outcome: ibv_alloc_pd: fails' "$FL_OUT/guest" && grep -q '^outcome: ibv_query_port: fails' "$FL_OUT/guest" &&
	echo "ok   the guest's control verbs fail afterwards" ||
	{ echo "FAIL: the guest's control verbs still work on a deleted device"; fail=1; }
grep -q '^outcome: a write: post fails' "$FL_OUT/guest" &&
	echo "ok   posting fails afterwards (EIO) instead of queueing work nobody takes" ||
	{ echo "FAIL: the guest could still post on a deleted device"; fail=1; }
if kill -0 "$VD_PID" 2>/dev/null && devs=$(vd_ctl -j dev show); then
	echo "ok   vbusd survives and answers; its devices now: $devs"
	jq -e 'map(select(.name == "vrdma0")) | length == 0' <<<"$devs" >/dev/null ||
		{ echo "FAIL: vrdma0 is still on the bus"; fail=1; }
else
	echo "FAIL: vbusd is gone or does not answer"; fail=1
fi
grep 'gone' "$VD_RUN_DIR/vbusd.log" | sed 's/^/vbusd| /'

echo "--- rxe0 back; vrdma0 added again serves a new guest"
restore || exit 1
res1=$(vd_res_counts)
[ "$res1" = "$res0" ] && echo "ok   rdma res show (qp cq mr pd cm_id) with rxe0 back: $res1, its baseline" ||
	{ echo "FAIL: rdma res show with rxe0 back: $res1, baseline $res0"; fail=1; }
vd_ctl dev add vrdma0 class vrdma backing="$VBUS_RXE" port=1 gid="$VBUS_GID_INDEX" bus t >/dev/null ||
	{ echo "FAIL: vrdma0 could not be added again"; exit 1; }
if fl_guest flush && grep -q '^done' "$FL_OUT/guest"; then
	echo "ok   a new guest runs (failures flush) on the new rxe0"
else
	cat "$FL_OUT/guest"; echo "FAIL: a new guest on the new rxe0"; fail=1
fi
echo "rxe0 afterwards: $(cat "/sys/class/infiniband/$VBUS_RXE/ports/1/state"), GID $VBUS_GID_INDEX $(cat "$gidf")"
exit $fail
