#!/bin/bash
# Verbs whose behaviour is checked against the native device's: each program runs with the
# same expectations natively on the soft-RoCE device, then as a process guest on vrdma0.
#   srq-cq   shared receive queues and ibv_resize_cq (tests/guest/srq-cq.c)
#   mw       memory windows, type 1 and 2 (tests/guest/mw.c)
#   fork     fork() with registered memory after ibv_fork_init (tests/guest/fork.c)
# (ibv_srq_pingpong, unmodified, is in guest-pingpong.)
# timeout: 180
. "$VBUS_TOP/tests/lib/vbusd.sh"
dir=${VBUS_BUILD:-$VBUS_TOP/build/default}/tests/guest
fail=0
vd_start t vrdma0 || exit 1
for t in srq-cq mw fork; do
	[ -x "$dir/$t" ] || { echo "FAIL no $dir/$t (make)"; fail=1; continue; }
	echo "--- $t, native ($VBUS_RXE)"
	timeout -k 5 "$(vt_secs 60)" "$dir/$t" "$VBUS_RXE" "$VBUS_GID_INDEX" || { fail=1; continue; }
	echo "--- $t, guest (vrdma0 through vbusd)"
	timeout -k 5 "$(vt_secs 60)" "${VD_RUN[@]}" "$dir/$t" vrdma0 "$VBUS_GID_INDEX" || fail=1
done
echo "--- vbusd's view of the last guest's objects is gone:"
vd_ctl res show || fail=1
exit $fail
