#!/bin/bash
# The kernel backend's lifecycle (docs/kernel.md): nothing a guest held outlives it.
#   1. Two guests carry ib_write_bw traffic; both are killed with SIGKILL mid-traffic:
#      `rdma res show` (QPs, CQs, MRs, PDs) is back to its baseline.
#   2. A guest holds a context: `rmmod vbus_vrdma` is refused while it does (the module
#      stays loaded and keeps working).
#   3. vbusd is killed with SIGKILL under a guest: the guest gets IBV_EVENT_DEVICE_FATAL
#      (the time from the kill to the guest's exit is reported, not judged), its verbs
#      fail at once, and every real object is gone.
# backends: kernel
# timeout: 180
. "${VBUS_TOP:?}/bench/lib/perftest.sh"
. "$VBUS_TOP/tests/lib/vbusd.sh"
pt_need_device
prog=${VBUS_BUILD:-$VBUS_TOP/build/default}/tests/guest/port-events
[ -x "$prog" ] || { echo "FAIL: $prog not built"; exit 1; }
vd_start t vrdma0 || exit 1
tmp=$(mktemp -d)
trap 'pkill -KILL -f "ib_write_bw.*-p $PT_PORT" 2>/dev/null; rm -rf "$tmp"; vd_stop >/dev/null 2>&1' EXIT
fail=0

base=$(vd_res_counts)
echo "baseline (qp cq mr pd cm_id): $base"

# 1. SIGKILL mid-traffic.
"${VD_RUN[@]}" ib_write_bw -d vrdma0 -x "$VBUS_GID_INDEX" -p "$PT_PORT" -D 60 -s 65536 \
	>"$tmp/server" 2>&1 &
spid=$!
vt_until 10 sh -c "ss -Hltn 'sport = :$PT_PORT' | grep -q ." ||
	{ echo "FAIL: the guest server did not listen"; cat "$tmp/server"; exit 1; }
"${VD_RUN[@]}" ib_write_bw -d vrdma0 -x "$VBUS_GID_INDEX" -p "$PT_PORT" -D 60 -s 65536 \
	"$VBUS_IP" >"$tmp/client" 2>&1 &
cpid=$!
sleep 3
during=$(vd_res_counts)
echo "during traffic (qp cq mr pd cm_id): $during"
[ "$during" != "$base" ] || { echo "FAIL: no real object while the guests ran"; fail=1; }
pkill -KILL -f "ib_write_bw.*-p $PT_PORT"
wait $spid $cpid 2>/dev/null	# not vbusd's
if vt_until 10 vd_res_is "$base"; then
	echo "ok   two guests killed mid-traffic: rdma res back to its baseline ($base)"
else
	echo "FAIL two guests killed mid-traffic: rdma res $(vd_res_counts), baseline $base"; fail=1
fi

# 2. rmmod with a guest attached.
timeout -k 2 "$(vt_secs 30)" "${VD_RUN[@]}" "$prog" fatal >"$tmp/g" 2>&1 &
gpid=$!
vt_wait_for "$tmp/g" ready 10 $gpid || { echo "FAIL: the guest did not get ready"; cat "$tmp/g"; exit 1; }
if rmmod vbus_vrdma 2>"$tmp/rmmod"; then
	echo "FAIL rmmod succeeded with a guest attached"; fail=1
	insmod "${VBUS_KMOD_PATH:-$VBUS_TOP/build/kernel/vbus_vrdma.ko}" || true
else
	echo "ok   rmmod with a guest attached is refused: $(head -n1 "$tmp/rmmod")"
fi
[ -e /dev/vbus-vrdma ] || { echo "FAIL the module is gone"; fail=1; }

# 3. vbusd dies under the guest.
t0=$(date +%s%N)
kill -KILL "$VD_PID"
wait "$VD_PID" 2>/dev/null
VD_PID=
wait $gpid
rc=$?
cat "$tmp/g"
[ $rc = 0 ] || { echo "FAIL: the guest after vbusd's death: exit $rc"; fail=1; }
grep -q "ok   IBV_EVENT_DEVICE_FATAL" "$tmp/g" &&
	echo "ok   DEVICE_FATAL after vbusd's SIGKILL ($(( ($(date +%s%N) - t0) / 1000000 )) ms to the guest's exit)" ||
	{ echo "FAIL: no DEVICE_FATAL"; fail=1; }
if vt_until 10 vd_res_is "$base"; then
	echo "ok   after vbusd's death: rdma res back to its baseline"
else
	echo "FAIL after vbusd's death: rdma res $(vd_res_counts), baseline $base"; fail=1
fi
exit $fail
