#!/bin/bash
# The whitelist (docs/vrdma.md, "Isolation"; docs/nesting.md, "How limits narrow"): a vrdma
# device's qp-types= and access= say which QP types and access flags its guests may use,
# and every level of nesting can only take bits away, on both backends:
#   - natively guest/whitelist finds everything allowed (the program itself is sound);
#   - depth 0's device allows RC and UC, local write, remote write and remote read: a
#     depth-1 guest gets EPERM for a UD QP, remote-atomic MRs and QPs, memory windows, and
#     the rest works; depth 0 logs the refusals (relay: vbusd's log; kernel: the module's);
#     `dev show` says the whitelist; a bad word is refused;
#   - a middle vbusd M1 (depth 1): a passthrough device left unset inherits its own
#     attachment's whitelist, a passthrough device narrower (RC; local write, remote read)
#     and a relay-mode one narrower (UC; local write) give depth-2 guests just that; one
#     wider (UD, or remote atomic) is refused at `dev add` with what it lacks;
#   - a middle M2 (depth 2, a guest of M1's narrower passthrough device): its passthrough
#     device inherits RC and local write, remote read, and a depth-3 guest gets just that;
#     one asking for UC again is refused.
# backends: kernel relay
# timeout: 300
. "${VBUS_TOP:?}/bench/lib/perftest.sh"
. "$VBUS_TOP/tests/lib/vbusd.sh"
pt_need_device
wl=${VBUS_BUILD:-$VBUS_TOP/build/default}/tests/guest/whitelist
[ -x "$wl" ] || { echo "FAIL: $wl not built"; exit 1; }
tmp=$(mktemp -d)
RUN1=$(mktemp -d /tmp/vbus-wl.XXXXXX)
RUN2=$(mktemp -d /tmp/vbus-wl.XXXXXX)
m1() { "$VD_BIN/vbusctl" --run-dir "$RUN1" "$@"; }
m2() { "$VD_BIN/vbusctl" --run-dir "$RUN2" "$@"; }
cleanup() {
	local p
	for p in ${M2_PID:-} ${M1_PID:-}; do
		vd_term "$p" || echo "a middle vbusd (pid $p) did not exit on SIGTERM: killed"
	done
	rm -rf "$RUN1" "$RUN2" "$tmp"
	vd_stop
}
trap cleanup EXIT
fail=0

# probe WHAT QP_TYPES ACCESS CMD...: guest/whitelist under CMD (its last word the device)
probe() {
	local what=$1 qpt=$2 acc=$3 dev
	shift 3
	dev=${*: -1}
	if timeout -k 5 "$(vt_secs 60)" "${@:1:$#-1}" "$wl" "$dev" "$qpt" "$acc" >"$tmp/p" 2>&1; then
		echo "ok   $what (qp-types $qpt, access $acc): $(grep -c '^ok' "$tmp/p") checks"
	else
		echo "FAIL $what (qp-types $qpt, access $acc)"; sed 's/^/  | /' "$tmp/p"; fail=1
	fi
}
# refused WHAT OUT-PATTERN CMD...: CMD fails, its message matching OUT-PATTERN
refused() {
	local what=$1 pat=$2 out
	shift 2
	if out=$("$@" 2>&1); then
		echo "FAIL $what: accepted: $out"; fail=1
	elif grep -qE -- "$pat" <<<"$out"; then
		echo "ok   $what refused: $out"
	else
		echo "FAIL $what: refused without '$pat': $out"; fail=1
	fi
}

probe "native $VBUS_RXE" all all "$VBUS_RXE"

D0_QPT=rc,uc D0_ACC=local-write,remote-write,remote-read
VD_DEV_ARGS="qp-types=$D0_QPT access=$D0_ACC" vd_start t vrdma0 || exit 1
vd_ctl dev show >"$tmp/show" 2>&1
grep -q "qp-types=$D0_QPT" "$tmp/show" && grep -q "access=$D0_ACC" "$tmp/show" &&
	echo "ok   dev show says the whitelist" ||
	{ echo "FAIL: dev show: $(cat "$tmp/show")"; fail=1; }
refused "qp-types=rc,xrc" "unknown word 'xrc'" \
	vd_ctl dev add vbad class vrdma backing="$VBUS_RXE" qp-types=rc,xrc bus t
probe "depth 1" "$D0_QPT" "$D0_ACC" "${VD_RUN[@]}" vrdma0
if [ "$VD_BACKEND" = kernel ]; then
	dmesg | grep -q "not in its whitelist" && echo "ok   the module logged the refusals" ||
		{ echo "FAIL: no 'not in its whitelist' in the kernel log"; fail=1; }
else
	grep -q "not in its whitelist" "$VD_RUN_DIR/vbusd.log" && echo "ok   vbusd logged the refusals" ||
		{ echo "FAIL: no 'not in its whitelist' in vbusd's log"; fail=1; }
fi

# M1 (depth 1): its devices on bus n.
"${VD_RUN[@]}" "$VD_BIN/vbusd" --run-dir "$RUN1" 2>"$tmp/m1.log" &
M1_PID=$!
vt_until 10 test -S "$RUN1/ctl.sock" || { echo "FAIL: M1 did not start"; cat "$tmp/m1.log"; exit 1; }
m1 bus add n allow all >/dev/null || { echo "FAIL: bus add in M1"; exit 1; }
# shares of M1's attachment: the kernel backend refuses children wider than what is left
share="max-objects=256 max-pinned=16777216"
m1 dev add vp class vrdma backing=vrdma0 mode=passthrough $share bus n >/dev/null &&
m1 dev add vq class vrdma backing=vrdma0 mode=passthrough $share qp-types=rc \
	access=local-write,remote-read bus n >/dev/null &&
m1 dev add vr class vrdma backing=vrdma0 mode=relay $share qp-types=uc access=local-write \
	bus n >/dev/null || { echo "FAIL: dev add in M1"; cat "$tmp/m1.log"; exit 1; }
m1 dev show >"$tmp/show" 2>&1
grep "^dev vp " "$tmp/show" | grep -q "qp-types=$D0_QPT" &&
	echo "ok   M1's passthrough device left unset inherits qp-types=$D0_QPT" ||
	{ echo "FAIL: M1's dev show: $(cat "$tmp/show")"; fail=1; }
refused "M1: a passthrough device with UD" "not ud" \
	m1 dev add vx class vrdma backing=vrdma0 mode=passthrough qp-types=rc,ud bus n
refused "M1: a relay-mode device with remote atomic" "not remote-atomic" \
	m1 dev add vx class vrdma backing=vrdma0 mode=relay access=local-write,remote-atomic bus n
N2=("$VD_BIN/vbus-run" --run-dir "$RUN1" --bus n --)
probe "depth 2, passthrough, inherited" "$D0_QPT" "$D0_ACC" "${N2[@]}" vp
probe "depth 2, passthrough, narrower" rc local-write,remote-read "${N2[@]}" vq
probe "depth 2, relay mode, narrower" uc local-write "${N2[@]}" vr

# M2 (depth 2, a guest of M1's vq): narrower still, inherited.
"${N2[@]}" "$VD_BIN/vbusd" --run-dir "$RUN2" 2>"$tmp/m2.log" &
M2_PID=$!
vt_until 10 test -S "$RUN2/ctl.sock" || { echo "FAIL: M2 did not start"; cat "$tmp/m2.log"; exit 1; }
m2 bus add n3 allow all >/dev/null || { echo "FAIL: bus add in M2"; exit 1; }
refused "M2: a passthrough device with UC again" "not uc" \
	m2 dev add vx class vrdma backing=vq mode=passthrough qp-types=rc,uc bus n3
m2 dev add v3 class vrdma backing=vq mode=passthrough max-objects=64 max-pinned=4194304 \
	bus n3 >/dev/null || { echo "FAIL: dev add in M2"; cat "$tmp/m2.log"; exit 1; }
probe "depth 3, passthrough, inherited from depth 2" rc local-write,remote-read \
	"$VD_BIN/vbus-run" --run-dir "$RUN2" --bus n3 -- v3
exit $fail
