#!/bin/bash
# A guest holds a context, a PD, a CQ and a QP: `vbusctl res show` lists them with the real
# objects behind them. Then vbusd dies (SIGKILL): the guest gets IBV_EVENT_DEVICE_FATAL, and
# its verbs then fail or return at once, never hang (tests/guest/port-events fatal).
# timeout: 60
. "${VBUS_TOP:?}/bench/lib/perftest.sh"
. "$VBUS_TOP/tests/lib/vbusd.sh"
pt_need_device
prog=${VBUS_BUILD:-$VBUS_TOP/build/default}/tests/guest/port-events
[ -x "$prog" ] || { echo "FAIL: $prog not built"; exit 1; }
vd_start t vrdma0 || exit 1
out=$(mktemp)
trap 'rm -f "$out"; vd_stop >/dev/null 2>&1' EXIT
timeout -k 2 "$(vt_secs 30)" "$VD_BIN/vbus-run" --bus t -- "$prog" fatal >"$out" 2>&1 &
pid=$!
vt_wait_for "$out" ready 10 $pid || { echo "FAIL: the guest did not get ready"; cat "$out"; exit 1; }
fail=0
res=$(vd_ctl -j res show)
echo "res show: $res"
# Both backends list the objects (the kernel backend's come from the module, VBK_IOC_RES);
# the module counts them, the relay has its counters.
jq -e '.[0].device == "vrdma0" and ([.[0].objects[].type] | sort) == ["cq","pd","qp"]
  and (.[0].objects[] | select(.type == "qp") | .real_qpn > 0 and .qp_type == "RC"
       and .state == "RESET")' <<<"$res" >/dev/null &&
	echo "ok   vbusctl -j res show: the guest's pd, cq and qp, the QP's real QPN and state" ||
	{ echo "FAIL vbusctl -j res show"; fail=1; }
if [ "$VD_BACKEND" = kernel ]; then
	jq -e '.[0].backend == "kernel" and .[0].counters.objects == 3' <<<"$res" >/dev/null &&
		echo "ok   vbusctl -j res show: backend kernel, the module counts 3 objects" ||
		{ echo "FAIL vbusctl -j res show: the module's counters"; fail=1; }
else
	jq -e '.[0].relay.passes > 0 and .[0].relay.sleeps > 0' <<<"$res" >/dev/null &&
		echo "ok   vbusctl -j res show: relay counters" ||
		{ echo "FAIL vbusctl -j res show: relay counters"; fail=1; }
fi
txt=$(vd_ctl res show qp)
grep -q "^  qp 0x.* real qpn [0-9]* RC RESET" <<<"$txt" && ! grep -q " cq " <<<"$txt" &&
	echo "ok   vbusctl res show qp: $(grep ' qp ' <<<"$txt")" ||
	{ echo "FAIL vbusctl res show qp: $txt"; fail=1; }
vd_ctl res show bogus >/dev/null 2>&1 && { echo "FAIL: res show bogus succeeded"; fail=1; }
kill -KILL "$VD_PID"
wait "$VD_PID" 2>/dev/null
VD_PID=
wait $pid
rc=$?
cat "$out"
[ $rc = 124 ] && echo "FAIL: the guest hung after vbusd died"
[ $rc = 0 ] && exit $fail
exit $rc
