#!/bin/bash
# vbusd dies (SIGKILL) under a guest that holds a context, a PD and a CQ: the guest gets
# IBV_EVENT_DEVICE_FATAL, and its verbs then fail or return at once, never hang
# (tests/guest/port-events fatal).
# timeout: 60
. "${VBUS_TOP:?}/bench/lib/perftest.sh"
. "$VBUS_TOP/tests/lib/vbusd.sh"
pt_need_device
prog=${VBUS_BUILD:-$VBUS_TOP/build/default}/tests/guest/port-events
[ -x "$prog" ] || { echo "FAIL: $prog not built"; exit 1; }
vd_start t vrdma0 || exit 1
out=$(mktemp)
trap 'rm -f "$out"; vd_stop >/dev/null 2>&1' EXIT
timeout -k 2 30 "$VD_BIN/vbus-run" --bus t -- "$prog" fatal >"$out" 2>&1 &
pid=$!
for _ in $(seq 100); do grep -q ready "$out" && break; sleep 0.1; done
grep -q ready "$out" || { echo "FAIL: the guest did not get ready"; cat "$out"; exit 1; }
kill -KILL "$VD_PID"
wait "$VD_PID" 2>/dev/null
VD_PID=
wait $pid
rc=$?
cat "$out"
[ $rc = 124 ] && echo "FAIL: the guest hung after vbusd died"
exit $rc
