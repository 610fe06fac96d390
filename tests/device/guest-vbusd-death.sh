#!/bin/bash
# vbusd dies (SIGKILL) under 16 guests: 14 carry RC traffic, one is blocked in
# ibv_get_cq_event, one makes control calls in a loop (ibv_reg_mr, ibv_dereg_mr of 1 MiB)
# so that vbusd dies during one (tests/guest/vbusd-death). Each must learn of it within 1 s
# (scaled: VBUS_TIME_SCALE) through IBV_EVENT_DEVICE_FATAL or its call returning, and its
# next verbs must fail the same way on every guest and both backends (docs/verbs.md). With
# the guests still alive, every real object is released (rdma res show at its baseline):
# vbusd's death frees what its guests held. Then vbusd restarts from its configuration
# file (-c) on the same run directory and serves a new guest.
# timeout: 240
. "${VBUS_TOP:?}/bench/lib/perftest.sh"
. "$VBUS_TOP/tests/lib/vbusd.sh"
pt_need_device
prog=${VBUS_BUILD:-$VBUS_TOP/build/default}/tests/guest/vbusd-death
[ -x "$prog" ] || { echo "FAIL: $prog not built"; exit 1; }
if [ "${VD_BACKEND:-}" = kernel ] && [ ! -e /dev/vbus-vrdma ]; then
	echo "SKIP: the kernel backend needs the vbus_vrdma module:" \
		"${VBUS_KMOD:-absent} ${VBUS_KMOD_REASON:-(no /dev/vbus-vrdma)}"
	exit 77
fi
N=${VBUS_DEATH_GUESTS:-16}
base=$(vd_res_counts)
VD_RUN_DIR=$(mktemp -d /tmp/vbus-test.XXXXXX)
out=$VD_RUN_DIR/out
mkdir "$out"
pids=()
cleanup() {
	[ ${#pids[@]} = 0 ] || kill -KILL "${pids[@]}" 2>/dev/null
	wait "${pids[@]}" 2>/dev/null
	vd_stop >/dev/null 2>&1
}
trap cleanup EXIT
cat >"$VD_RUN_DIR/vbusd.conf" <<EOF
# guest-vbusd-death: one bus, one vrdma device
bus add t allow all
dev add vrdma0 class vrdma backing=$VBUS_RXE port=1 gid=$VBUS_GID_INDEX ${VD_BACKEND:+backend=$VD_BACKEND} bus t
EOF
start_vbusd() {
	"$VD_BIN/vbusd" --run-dir "$VD_RUN_DIR" -c "$VD_RUN_DIR/vbusd.conf" 2>>"$VD_RUN_DIR/vbusd.log" &
	VD_PID=$!
	vt_until 10 vd_ctl -j dev show >/dev/null 2>&1 ||
		{ echo "FAIL: vbusd did not start from its config"; cat "$VD_RUN_DIR/vbusd.log"; exit 1; }
}
start_vbusd
export VBUS_RUN_DIR=$VD_RUN_DIR
fail=0

for i in $(seq 1 "$N"); do
	mode=traffic
	[ "$i" = "$N" ] && mode=blocked
	[ "$i" = $((N - 1)) ] && mode=calls
	"$VD_BIN/vbus-run" --bus t -- "$prog" $mode vrdma0 "$VBUS_GID_INDEX" >"$out/$i" 2>&1 &
	pids+=($!)
done
for i in $(seq 1 "$N"); do
	vt_wait_for "$out/$i" ready 60 "${pids[$((i - 1))]}" ||
		{ echo "FAIL: guest $i did not get ready"; cat "$out/$i"; exit 1; }
done
echo "ok   $N guests ready ($((N - 2)) with RC traffic, 1 blocked in ibv_get_cq_event," \
	"1 in a loop of control calls)," \
	"res $(vd_res_counts) (baseline $base)"

t_kill=$(date +%s%N)
kill -KILL "$VD_PID"
wait "$VD_PID" 2>/dev/null
VD_PID=
for i in $(seq 1 "$N"); do
	vt_wait_for "$out/$i" '^after:' 30 "${pids[$((i - 1))]}" ||
		{ echo "FAIL: guest $i did not learn of vbusd's death"; cat "$out/$i"; fail=1; }
done
[ $fail = 0 ] || exit 1
# The slowest guest's delay, in ms; the limit (1 s) scales with the machine.
worst=$(for i in $(seq 1 "$N"); do sed -n 's/^fatal_ns: //p' "$out/$i"; done |
	awk -v k="$t_kill" 'BEGIN{m=0} {d=($1-k)/1e6; if (d>m) m=d} END{printf "%.0f", m}')
limit=$(vt_secs 1)
if awk -v w="$worst" -v l="$limit" 'BEGIN{exit !(w <= l * 1000)}'; then
	echo "ok   every guest learnt of the death within ${worst} ms (limit ${limit} s)"
else
	echo "FAIL: the slowest guest learnt of the death after ${worst} ms (limit ${limit} s)"
	fail=1
fi
want_t='after: post_send EIO, alloc_pd EIO, poll_cq returns at once, empty'
want_b='after: get_cq_event EIO'
want_c='after: reg_mr EIO'
for i in $(seq 1 "$N"); do
	want=$want_t
	[ "$i" = "$N" ] && want=$want_b
	[ "$i" = $((N - 1)) ] && want=$want_c
	got=$(grep '^after:' "$out/$i")
	[ "$got" = "$want" ] || { echo "FAIL: guest $i: '$got', wanted '$want'"; fail=1; }
done
[ $fail = 0 ] && echo "ok   every guest's next verbs: ${want_t#after: }; the blocked one:" \
	"${want_b#after: }; the one in control calls: ${want_c#after: }" \
	"($(grep -h '^calls:' "$out/$((N - 1))"))"
grep -h '^completed:' "$out"/* | awk '{s+=$2} END{print "info " NR " guests completed " s " WRITEs before the death"}'

# The guests still hold their descriptors; what they held must be gone all the same.
if vt_until 10 vd_res_is "$base"; then
	echo "ok   every real object released with the guests still alive: res $(vd_res_counts)"
else
	echo "FAIL: real objects left after vbusd's death: res $(vd_res_counts), baseline $base"
	rdma res show qp | head -5
	fail=1
fi
kill -KILL "${pids[@]}" 2>/dev/null
wait "${pids[@]}" 2>/dev/null
pids=()

start_vbusd
if "$VD_BIN/vbus-run" --bus t -- "$prog" short vrdma0 "$VBUS_GID_INDEX" >"$out/new" 2>&1; then
	echo "ok   vbusd restarted from its config serves a new guest: $(grep '^ok' "$out/new")"
else
	echo "FAIL: a new guest of the restarted vbusd"; cat "$out/new"; fail=1
fi
vd_stop || fail=1
vt_until 10 vd_res_is "$base" || { echo "FAIL: res $(vd_res_counts) after stop"; fail=1; }
exit $fail
