#!/bin/bash
# Verbs whose behaviour is checked against the native device's: each program runs with the
# same expectations natively on the soft-RoCE device, then as a process guest on vrdma0.
#   srq-cq   shared receive queues and ibv_resize_cq (tests/guest/srq-cq.c)
#   mw       memory windows, type 1 and 2 (tests/guest/mw.c)
#   fork     fork() with registered memory after ibv_fork_init (tests/guest/fork.c)
#   unprivileged  without CAP_NET_RAW and CAP_IPC_LOCK: a privileged Q_Key is EPERM, pins
#            past RLIMIT_MEMLOCK ENOMEM (tests/guest/unprivileged.c)
#   last-close    objects outlive their creator in a forked child's descriptors and go at
#            the child's exit (tests/guest/last-close.c)
#   parity   device attributes, the GID table, rereg_mr, import, solicited-only arming,
#            UD sends whose AH is destroyed right after the post,
#            many contexts
#            (tests/guest/parity.c): the guest's "outcome:" lines must be the native ones,
#            and each "limit:" the native one, or the rings' where that is lower, never 0
# (ibv_srq_pingpong, unmodified, is in guest-pingpong.)
# timeout: 180
. "$VBUS_TOP/tests/lib/vbusd.sh"
dir=${VBUS_BUILD:-$VBUS_TOP/build/default}/tests/guest
fail=0
# A device quota of handles other than the default (4096), so that the limits below are seen
# to follow the device's policy, not a constant.
objs=3000
VD_DEV_ARGS="max-objects=$objs${VD_DEV_ARGS:+ $VD_DEV_ARGS}"
vd_start t vrdma0 || exit 1
for t in srq-cq mw fork unprivileged last-close; do
	[ -x "$dir/$t" ] || { echo "FAIL no $dir/$t (make)"; fail=1; continue; }
	if vd_controls; then	# the native control, once per suite (tests/lib/vbusd.sh)
		echo "--- $t, native ($VBUS_RXE)"
		timeout -k 5 "$(vt_secs 60)" "$dir/$t" "$VBUS_RXE" "$VBUS_GID_INDEX" || { fail=1; continue; }
	fi
	echo "--- $t, guest (vrdma0 through vbusd)"
	timeout -k 5 "$(vt_secs 60)" "${VD_RUN[@]}" "$dir/$t" vrdma0 "$VBUS_GID_INDEX" || fail=1
done
# The rings carry at most 32767 work requests or CQEs and 32 SGEs, and a guest's objects
# are at most its quota of handles, the device's max-objects ($objs here): docs/verbs.md.
ring_cap() {
	case $1 in
	max_qp_wr|max_srq_wr|max_cqe) echo 32767 ;;
	max_sge) echo 32 ;;
	max_qp|max_cq|max_mr|max_pd|max_srq|max_ah) echo "$objs" ;;
	*) echo "" ;;
	esac
}
out=$(mktemp -d)
p=$dir/parity
echo "--- parity, native ($VBUS_RXE)"
timeout -k 5 "$(vt_secs 60)" "$p" "$VBUS_RXE" "$VBUS_GID_INDEX" >"$out/native" 2>&1; nrc=$?
sed 's/^/native| /' "$out/native"
echo "--- parity, guest (vrdma0 through vbusd)"
timeout -k 5 "$(vt_secs 60)" "${VD_RUN[@]}" "$p" vrdma0 "$VBUS_GID_INDEX" >"$out/guest" 2>&1; grc=$?
sed 's/^/guest | /' "$out/guest"
[ $nrc = 0 ] && [ $grc = 0 ] || { echo "FAIL parity: native exit $nrc, guest exit $grc"; fail=1; }
if diff <(grep '^outcome:' "$out/native") <(grep '^outcome:' "$out/guest") >/dev/null; then
	echo "ok   parity: the guest's $(grep -c '^outcome:' "$out/guest") outcome lines are the native ones"
else
	echo "FAIL parity: the guest's outcome differs from native:"
	diff <(grep '^outcome:' "$out/native") <(grep '^outcome:' "$out/guest") | sed 's/^/  /'
	fail=1
fi
while read -r _ name nv; do
	gv=$(awk -v n="$name" '$1 == "limit:" && $2 == n { print $3 }' "$out/guest")
	want=$nv cap=$(ring_cap "$name")
	[ -n "$cap" ] && [ "$nv" -gt "$cap" ] && want=$cap
	if [ "$gv" != "$want" ] || { [ "$gv" = 0 ] && [ "$nv" != 0 ]; }; then
		echo "FAIL parity: $name is $gv in the guest, $nv natively (expected $want)"
		fail=1
	fi
done < <(grep '^limit:' "$out/native")
# The GID table refreshed on IBV_EVENT_GID_CHANGE: an address added to the netdev while
# the program waits (natively the kernel's table, in a guest the library's copy).
gid_change() {	# LABEL ADDR CMD...: the outcome line in $out/gc-LABEL
	local label=$1 f=$out/gc-$1 addr=$2 pid rc
	shift 2
	PARITY_ONLY=refresh PARITY_GID_ADDR=$addr "$@" >"$f" 2>&1 &
	pid=$!
	vt_wait_for "$f" '^ready' 30 $pid || { echo "FAIL refresh $label: not ready"; cat "$f"; return 1; }
	ip addr add "$addr/24" dev "$VBUS_NETDEV"
	wait $pid; rc=$?
	ip addr del "$addr/24" dev "$VBUS_NETDEV"
	sed "s/^/refresh $label| /" "$f"
	return $rc
}
if [ -n "${VBUS_NETDEV:-}" ]; then
	gid_change native 10.99.0.77 timeout -k 5 "$(vt_secs 40)" "$p" "$VBUS_RXE" "$VBUS_GID_INDEX" &&
	gid_change guest 10.99.0.78 timeout -k 5 "$(vt_secs 40)" "${VD_RUN[@]}" "$p" vrdma0 \
		"$VBUS_GID_INDEX" || fail=1
	if diff <(grep '^outcome:' "$out/gc-native") <(grep '^outcome:' "$out/gc-guest" 2>/dev/null) \
		>/dev/null; then
		echo "ok   parity: after GID_CHANGE the guest's table has the new GID, as natively"
	else
		echo "FAIL parity: GID_CHANGE outcome differs"
		fail=1
	fi
fi
# ibv_devinfo -v walks the GID table: natively sysfs reads, in a guest the library's copy
# of the table taken at open (issue 12, point 8): the same GIDs, and a handful of calls to
# vbusd in all (one per entry made 2,051 before the copy).
if command -v ibv_devinfo >/dev/null; then
	gids() { sed -n 's/^[[:space:]]*\(GID\[[ 0-9]*\]:.*\)/\1/p' "$1"; }
	timeout -k 5 "$(vt_secs 30)" ibv_devinfo -v -d "$VBUS_RXE" >"$out/di-native" 2>&1
	n0=$(grep -c ' gone: ' "$VD_RUN_DIR/vbusd.log")
	timeout -k 5 "$(vt_secs 30)" "${VD_RUN[@]}" ibv_devinfo -v -d vrdma0 >"$out/di-guest" 2>&1
	one_more() { [ "$(grep -c ' gone: ' "$VD_RUN_DIR/vbusd.log")" -gt "$n0" ]; }
	vt_until 10 one_more
	calls=$(grep ' gone: ' "$VD_RUN_DIR/vbusd.log" | tail -n 1 | sed -n 's/.* gone: \([0-9]*\) calls.*/\1/p')
	if [ -z "$(gids "$out/di-native")" ] || ! diff <(gids "$out/di-native") <(gids "$out/di-guest") >/dev/null; then
		echo "FAIL ibv_devinfo -v: the guest's GID table differs from native's:"
		diff <(gids "$out/di-native") <(gids "$out/di-guest") | sed 's/^/  /'; fail=1
	elif [ -z "$calls" ] || [ "$calls" -gt 64 ]; then
		echo "FAIL ibv_devinfo -v as a guest made ${calls:-an unknown number of} calls to vbusd (at most 64)"; fail=1
	elif [ "${VD_BACKEND:-}" = kernel ]; then	# its verbs go to the module: the same library code
		echo "ok   ibv_devinfo -v: the guest lists native's $(gids "$out/di-native" | wc -l) GIDs (the kernel backend's calls go to the module: counted on the relay)"
	else
		echo "ok   ibv_devinfo -v: the guest lists native's $(gids "$out/di-native" | wc -l) GIDs, in $calls calls to vbusd"
	fi
fi
rm -rf "$out"
echo "--- vbusd's view of the last guest's objects is gone:"
vd_ctl res show || fail=1
exit $fail
