#!/bin/bash
# A guest sees the port go down and up: the netdev under rxe0 is taken down and up while
# tests/guest/port-events waits in ibv_get_async_event under vbus-run. Afterwards rxe0 is
# ACTIVE again with its GID back, for the tests that follow.
# timeout: 120
. "${VBUS_TOP:?}/bench/lib/perftest.sh"
. "$VBUS_TOP/tests/lib/vbusd.sh"
pt_need_device
prog=${VBUS_BUILD:-$VBUS_TOP/build/default}/tests/guest/port-events
[ -x "$prog" ] || { echo "FAIL: $prog not built"; exit 1; }
[ -n "${VBUS_NETDEV:-}" ] || { echo "no VBUS_NETDEV: run this under tests/vm/run"; exit 77; }
vd_start t vrdma0 || exit 1
out=$(mktemp)
trap 'ip link set "$VBUS_NETDEV" up; rm -f "$out"; vd_stop' EXIT
"$VD_BIN/vbus-run" --bus t -- "$prog" >"$out" 2>&1 &
pid=$!
vt_wait_for "$out" ready 10 $pid || { echo "FAIL: the guest did not get ready"; cat "$out"; exit 1; }
ip link set "$VBUS_NETDEV" down
sleep 1
ip link set "$VBUS_NETDEV" up
wait $pid
rc=$?
cat "$out"
gidf=/sys/class/infiniband/$VBUS_RXE/ports/1/gids/$VBUS_GID_INDEX
vt_until 10 vd_rxe_active
echo "rxe0 afterwards: $(cat /sys/class/infiniband/$VBUS_RXE/ports/1/state), GID $VBUS_GID_INDEX $(cat "$gidf")"
exit $rc
