#!/bin/bash
# A guest past its device's quotas (max-objects 16, max-pinned 8 MiB) gets native's errors
# (a QP past the handles: EDQUOT; ibv_reg_mr past the pinned bytes: ENOMEM, as
# RLIMIT_MEMLOCK natively), keeps what it holds, and `vbusctl guest show` names the quotas
# that refused it while it lives, on both backends: on the relay vbusd refuses and counts;
# on the kernel backend the module refuses and counts (VBK_IOC_STATS' quota_objects and
# quota_pinned), and vbusd shows its counts as its own (issue 12; docs/verbs.md).
# tests/guest/nest-quota does the asking and holds (NEST_QUOTA_HOLD) while this reads.
# timeout: 120
. "${VBUS_TOP:?}/bench/lib/perftest.sh"
. "$VBUS_TOP/tests/lib/vbusd.sh"
pt_need_device
prog=${VBUS_BUILD:-$VBUS_TOP/build/default}/tests/guest/nest-quota
[ -x "$prog" ] || { echo "FAIL: $prog not built"; exit 1; }
VD_DEV_ARGS="max-objects=16 max-pinned=8388608" vd_start t vrdma0 || exit 1
tmp=$(mktemp -d)
trap 'touch "$tmp/go"; [ -z "${job:-}" ] || wait "$job" 2>/dev/null; rm -rf "$tmp"; vd_stop >/dev/null 2>&1' EXIT
fail=0

NEST_QUOTA_HOLD=$tmp/go timeout -k 5 "$(vt_secs 60)" "${VD_RUN[@]}" "$prog" vrdma0 16 8388608 \
	"$VBUS_GID_INDEX" >"$tmp/out" 2>&1 &
job=$!
vt_wait_for "$tmp/out" '^holding' 30 $job || { cat "$tmp/out"; echo "FAIL: the guest did not reach its quotas"; exit 1; }
sed 's/^/guest| /' "$tmp/out"
# The guest holding the device (the only one with a device open).
js=$(vd_ctl -j guest show | jq -c 'map(select(.devices | length > 0)) | .[0]')
txt=$(vd_ctl guest show)
echo "guest show: $txt"
hits=$(jq -r '.quota_hits' <<<"$js")
which=$(jq -r '.quota_hit' <<<"$js")
if [ "$hits" = 2 ] && [ -n "$which" ] && [ "$which" != null ]; then
	echo "ok   guest show: quota_hits 2, quota_hit \"$which\" ($VD_BACKEND backend)"
else
	echo "FAIL: guest show: quota_hits '$hits', quota_hit '$which', wanted 2 and a name"; fail=1
fi
case $VD_BACKEND:$which in
relay:max-pinned | kernel:max-objects,max-pinned) echo "ok   it names the quotas that refused" ;;
*) echo "FAIL: quota_hit '$which' on the $VD_BACKEND backend"; fail=1 ;;
esac
grep -q "quota-hits 2 last $which" <<<"$txt" && echo "ok   the text form says it too" ||
	{ echo "FAIL: the text form has no 'quota-hits 2 last $which'"; fail=1; }
if [ "$VD_BACKEND" = kernel ]; then
	jq -e '.devices[0].resources.quota_hits == {"max-objects": 1, "max-pinned": 1}' \
		<<<"$js" >/dev/null &&
		echo "ok   the device's resources count each: max-objects 1, max-pinned 1" ||
		{ echo "FAIL: the device's quota_hits: $(jq -c '.devices[0].resources' <<<"$js")"; fail=1; }
fi
touch "$tmp/go"
wait $job
rc=$?
[ $rc = 0 ] || { cat "$tmp/out"; echo "FAIL: the guest exit $rc"; fail=1; }
grep -q '^FAIL' "$tmp/out" && fail=1
exit $fail
