#!/bin/bash
# The kernel backend's lifecycle (docs/kernel.md): nothing a guest held outlives it.
#   1. Two guests in ib_write_bw traffic are SIGKILLed: `rdma res show` is back to its baseline.
#   2. `vbusctl dev del` under guests in ib_write_bw traffic and tests/guest/revoke (objects, and
#      two levels of VBK_IOC_CHILD below, and a thread registering 16 MiB in a loop, so that a
#      REG_MR is in flight): DEVICE_FATAL within a scaled 1 s, every later call
#      -EIO in the module, `rdma res show` at its baseline while the guests still hold their
#      descriptors; vbusd lives on and serves the device added again.
#   3. `rmmod vbus_vrdma` is refused while a guest holds a context (the module keeps working).
#   4. vbusd is killed with SIGKILL under a guest: the guest gets IBV_EVENT_DEVICE_FATAL
#      (the time from the kill to the guest's exit is reported, not judged), its verbs
#      fail at once, and every real object is gone.
# backends: kernel
# timeout: 180
. "${VBUS_TOP:?}/bench/lib/perftest.sh"
. "$VBUS_TOP/tests/lib/vbusd.sh"
pt_need_device
prog=${VBUS_BUILD:-$VBUS_TOP/build/default}/tests/guest/port-events
rv=${VBUS_BUILD:-$VBUS_TOP/build/default}/tests/guest/revoke
[ -x "$prog" ] && [ -x "$rv" ] || { echo "FAIL: $prog or $rv not built"; exit 1; }
vd_start t vrdma0 || exit 1
tmp=$(mktemp -d)
port2=$((PT_PORT + 1))
trap 'pkill -KILL -f "ib_write_bw.*-p $PT_PORT" 2>/dev/null; pkill -KILL -f "ib_write_bw.*-p $port2" 2>/dev/null; rm -rf "$tmp"; vd_stop >/dev/null 2>&1' EXIT
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
# (both perftest QPs, each side's: the guests' objects are real and counted)
vt_until 10 sh -c "[ \$(rdma res show qp 2>/dev/null | grep -c .) -ge $(( ${base%% *} + 2 )) ]" || true
sleep 1	# (traffic flows once both have their QPs)
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

# 2. dev del under guests.
"${VD_RUN[@]}" ib_write_bw -d vrdma0 -x "$VBUS_GID_INDEX" -p "$port2" -D 120 -s 65536 \
	>"$tmp/server2" 2>&1 &
spid=$!
vt_until 10 sh -c "ss -Hltn 'sport = :$port2' | grep -q ." ||
	{ echo "FAIL: the guest server did not listen"; cat "$tmp/server2"; exit 1; }
"${VD_RUN[@]}" ib_write_bw -d vrdma0 -x "$VBUS_GID_INDEX" -p "$port2" -D 120 -s 65536 \
	"$VBUS_IP" >"$tmp/client2" 2>&1 &
cpid=$!
timeout -k 2 "$(vt_secs 120)" "${VD_RUN[@]}" "$rv" vrdma0 "$tmp/go" >"$tmp/rv" 2>&1 &
rpid=$!
vt_wait_for "$tmp/rv" ready 20 $rpid || { echo "FAIL: guest/revoke did not get ready"; cat "$tmp/rv"; exit 1; }
# Both ib_write_bw QPs and guest/revoke's exist (perftest's output is buffered until its exit).
qps() { [ "$(rdma res show qp 2>/dev/null | grep -c .)" -ge $(( ${base%% *} + 3 )) ]; }
vt_until 20 qps || { echo "FAIL: the guests' QPs are not all there: $(vd_res_counts)"; fail=1; }
sleep 2
kill -0 $cpid 2>/dev/null || { echo "FAIL: ib_write_bw ended before dev del"; cat "$tmp/client2"; fail=1; }
during=$(vd_res_counts)
echo "before dev del (qp cq mr pd cm_id): $during"
t0=$(date +%s%N)
vd_ctl dev del vrdma0 || { echo "FAIL: vbusctl dev del"; fail=1; }
vt_wait_for "$tmp/rv" '^revoked|^FAIL' 20 $rpid
ns=$(sed -n 's/^ok   IBV_EVENT_DEVICE_FATAL at \([0-9]*\) ns$/\1/p' "$tmp/rv")
lim=$(awk -v s="${VBUS_TIME_SCALE:-$VT_FLOOR}" 'BEGIN{printf "%d", 1000 * s}')	# 1 s, scaled
if [ -n "$ns" ] && [ $(( (ns - t0) / 1000000 )) -le "$lim" ]; then
	echo "ok   dev del: the guest got DEVICE_FATAL $(( (ns - t0) / 1000000 )) ms after it (limit $lim ms)"
else
	echo "FAIL dev del: DEVICE_FATAL ${ns:+$(( (ns - t0) / 1000000 )) ms after it (limit $lim ms)}${ns:-never}"; fail=1
fi
# guest/revoke's second thread registered 16 MiB in a loop: its last success ended after the
# delete began, so a REG_MR was pinning when the revocation came or just before it (the
# revocation takes the ctl mutex after it); that MR is gone with the rest (res below).
read -r pb pe < <(sed -n 's/^ok   REG_MR loop: .* from \([0-9]*\) to \([0-9]*\) ns, then .*/\1 \2/p' "$tmp/rv")
# (one loop's time of slack: the revocation may land in a DEREG_MR or between the two)
if [ -n "${pe:-}" ] && [ $(( pe + 2 * (pe - pb) + 1000000 )) -ge "$t0" ]; then
	echo "ok   dev del: a REG_MR loop ran into it: its last registration from $(( (pb - t0) / 1000000 )) to $(( (pe - t0) / 1000000 )) ms from the delete's start, the next failed"
else
	echo "FAIL dev del: the REG_MR loop ${pe:+ended $(( (t0 - pe) / 1000000 )) ms before the delete}${pe:-did not report}"; fail=1
fi
if grep -q '^revoked' "$tmp/rv"; then
	grep '^ok' "$tmp/rv" | sed 's/^/  /'
else
	echo "FAIL dev del: guest/revoke's checks"; sed 's/^/  | /' "$tmp/rv"; fail=1
fi
# The objects went with the revocation, not with a close: guest/revoke holds every descriptor.
if vt_until 10 vd_res_is "$base" && kill -0 $rpid 2>/dev/null; then
	echo "ok   dev del: rdma res back to its baseline with guest/revoke's descriptors still open (before: $during)"
else
	echo "FAIL dev del: rdma res $(vd_res_counts), baseline $base; guest/revoke $(kill -0 $rpid 2>/dev/null && echo alive || echo gone)"; fail=1
fi
# ib_write_bw either sees an error completion or polls a CQ that gets nothing more (as on a
# disassociated device natively): reported, not judged; its objects are gone either way.
if kill -0 $cpid 2>/dev/null; then
	echo "     the ib_write_bw client polls on"
else
	wait $cpid; echo "     the ib_write_bw client ended (exit $?): $(grep -iE -m1 'fail|error|couldn' "$tmp/client2")"
fi
kill -KILL $spid $cpid 2>/dev/null
wait $spid $cpid 2>/dev/null
touch "$tmp/go"
wait $rpid || { echo "FAIL dev del: guest/revoke exited $?"; sed 's/^/  | /' "$tmp/rv"; fail=1; }
grep -q "^ok   destroying" "$tmp/rv" && echo "ok   dev del: the guest's destroy and close calls succeed after it"
# vbusd lives on: the device is added again and the next sections run on it.
kill -0 "$VD_PID" 2>/dev/null &&
	vd_ctl dev add vrdma0 class vrdma backing="$VBUS_RXE" port=1 gid="$VBUS_GID_INDEX" \
		${VD_BACKEND:+backend=$VD_BACKEND} ${VD_DEV_ARGS:-} bus t >/dev/null ||
	{ echo "FAIL: vbusd after dev del"; tail -n 20 "$VD_RUN_DIR/vbusd.log"; exit 1; }
echo "ok   vbusd lives on: vrdma0 added again"

# 3. rmmod with a guest attached.
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

# 4. vbusd dies under the guest.
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
