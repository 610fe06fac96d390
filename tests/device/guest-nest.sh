#!/bin/bash
# Nesting, depth 2 (docs/nesting.md): a host vbusd on rxe0 (VD_BACKEND at depth 0), a second
# vbusd run as its guest under vbus-run that backs its own bus's vrdma device with the
# vrdma device it sees (relay mode: it forwards everything), and a nested guest on that
# bus. From the nested guest to a native peer: ibv_rc_pingpong -c and the integrity
# program. Refusals: the middle vbusd may not give its guests more than its own attachment
# (max-objects, max-pinned, another GID index, backend=kernel), and a nested guest past its
# QP quota and its pinned-byte quota gets an error while its parent's objects are untouched.
# timeout: 400
. "${VBUS_TOP:?}/tests/lib/pingpong.sh"
. "$VBUS_TOP/tests/lib/vbusd.sh"
pt_need_device
ig=${VBUS_BUILD:-$VBUS_TOP/build/default}/tests/guest/integrity
mem=${VBUS_BUILD:-$VBUS_TOP/build/default}/tests/guest/nest-quota
[ -x "$ig" ] && [ -x "$mem" ] || { echo "FAIL: $ig or $mem not built"; exit 1; }
if [ "${VD_BACKEND:-}" = kernel ]; then
	echo "SKIP: a vbusd nested on a kernel-backend attachment needs ibv_reg_mr_iova at" \
		"another address, which the module's REG_MR does not take yet (docs/nesting.md)"
	exit 77
fi
# depth 0: max-objects 256, max-pinned 128 MiB for its guests, the middle vbusd among them
VD_DEV_ARGS="max-objects=256 max-pinned=134217728" vd_start t vrdma0 || exit 1
RUN1=$(mktemp -d /tmp/vbus-nest.XXXXXX)
tmp=$(mktemp -d)
mid() { "$VD_BIN/vbusctl" --run-dir "$RUN1" "$@"; }
cleanup() {
	[ -n "${MID_PID:-}" ] && kill -TERM "$MID_PID" 2>/dev/null && wait "$MID_PID"
	rm -rf "$RUN1" "$tmp"
	vd_stop
}
trap cleanup EXIT
fail=0

# depth 1: vbusd as a guest of bus t
"${VD_RUN[@]}" "$VD_BIN/vbusd" --run-dir "$RUN1" 2>"$tmp/mid.log" &
MID_PID=$!
vt_until 10 test -S "$RUN1/ctl.sock" || { echo "FAIL: the nested vbusd did not start"; cat "$tmp/mid.log"; exit 1; }
mid bus add n allow all >/dev/null || { echo "FAIL: bus add in the nested vbusd"; exit 1; }

# Wider than its own attachment: refused, with the parent's limit named.
refuse() {	# WHAT ATTRS...: `dev add` must fail and say "wider" or name the kernel backend
	local what=$1 out
	shift
	if out=$(mid dev add vx class vrdma backing=vrdma0 "$@" bus n 2>&1); then
		echo "FAIL: the nested vbusd took $what: $out"; fail=1; mid dev del vx >/dev/null 2>&1
	elif grep -q "wider than this vbusd's own attachment\|kernel backend needs a real" <<<"$out"; then
		echo "ok   refused $what: $out"
	else
		echo "FAIL: $what refused without the reason: $out"; fail=1
	fi
}
refuse "max-objects=257 (parent allows 256)" max-objects=257
refuse "max-pinned=128M+4K (parent allows 128M)" max-pinned=134221824
refuse "gid=$((VBUS_GID_INDEX + 1)) (parent allows $VBUS_GID_INDEX)" gid=$((VBUS_GID_INDEX + 1))
refuse "backend=kernel on a vbus device" backend=kernel

# The devices its guests get: vrdma0 with the limits left unset (the parent's), vq with 16
# objects and 8 MiB pinned, inside its own 256 and 128 MiB.
mid dev add vrdma0 class vrdma backing=vrdma0 bus n >/dev/null &&
mid dev add vq class vrdma backing=vrdma0 max-objects=16 max-pinned=8388608 bus n >/dev/null ||
	{ echo "FAIL: dev add on the nested vbusd"; cat "$tmp/mid.log"; exit 1; }
mid dev show >"$tmp/show" 2>&1; grep -q "backend=relay" "$tmp/show" ||
	{ echo "FAIL: the nested device is not relay: $(cat "$tmp/show")"; fail=1; }
# An unset limit is the parent's when that is narrower than the default (4096 objects).
grep -q "vrdma0: nested in our own attachment: max-objects 256 of 256, max-pinned 134217728 of 134217728" "$tmp/mid.log" &&
	echo "ok   unset limits are the parent's (256 objects, 128 MiB)" ||
	{ echo "FAIL: unset limits of a nested device"; grep vrdma0 "$tmp/mid.log"; fail=1; }

NEST=("$VD_BIN/vbus-run" --run-dir "$RUN1" --bus n --)

# The nested guest (depth 2) to a native peer.
PP_SERVER_WRAP=() PP_SERVER_DEV=$VBUS_RXE PP_CLIENT_WRAP=("${NEST[@]}") PP_CLIENT_DEV=vrdma0
for iters in 500; do
	if pp_run ibv_rc_pingpong $iters -c >"$tmp/pp" 2>&1; then
		echo "ok   ibv_rc_pingpong -c, depth-2 guest to native: $(grep -m1 'client| .*iters in' "$tmp/pp")"
	else
		echo "FAIL ibv_rc_pingpong -c, depth-2 guest to native"; sed 's/^/  | /' "$tmp/pp"; fail=1
	fi
done
PP_SERVER_WRAP=("${NEST[@]}") PP_SERVER_DEV=vrdma0 PP_CLIENT_WRAP=() PP_CLIENT_DEV=$VBUS_RXE
if pp_run ibv_rc_pingpong 500 -c -e >"$tmp/pp" 2>&1; then
	echo "ok   ibv_rc_pingpong -c -e, native to depth-2 guest: $(grep -m1 'client| .*iters in' "$tmp/pp")"
else
	echo "FAIL ibv_rc_pingpong -c -e, native to depth-2 guest"; sed 's/^/  | /' "$tmp/pp"; fail=1
fi

# The integrity program (RC, UC, UD, every byte checked), depth-2 client, native server.
seed=${VBUS_IG_SEED:-$(( (RANDOM << 16) | RANDOM ))}
port=$PT_PORT
timeout -k 5 "$(vt_secs 120)" "$ig" -d "$VBUS_RXE" -g "$VBUS_GID_INDEX" -p "$port" >"$tmp/igs" 2>&1 &
spid=$!
if pt_wait_listen "$port" "$spid" &&
   timeout -k 5 "$(vt_secs 180)" "${NEST[@]}" "$ig" -d vrdma0 -g "$VBUS_GID_INDEX" -p "$port" \
	-s "$seed" ${VBUS_IG_ARGS:-} "$VBUS_IP" >"$tmp/igc" 2>&1 && wait "$spid"; then
	echo "ok   integrity (seed $seed), depth-2 guest to native:"
	grep -h ': [rcud]*: \|rounds in' "$tmp/igc" | sed 's/^/  /'
else
	echo "FAIL integrity (seed $seed), depth-2 guest to native"
	sed 's/^/  client| /' "$tmp/igc"; sed 's/^/  server| /' "$tmp/igs"; fail=1
	kill "$spid" 2>/dev/null
fi

# A nested guest that asks for more than its parent allows: past 16 objects and 8 MiB.
if timeout -k 5 "$(vt_secs 60)" "${NEST[@]}" "$mem" vq 16 8388608 "$VBUS_GID_INDEX" >"$tmp/q" 2>&1; then
	echo "ok   nested guest past its quotas: $(grep -c '^ok' "$tmp/q") checks"; sed 's/^/  /' "$tmp/q"
else
	echo "FAIL nested guest past its quotas"; sed 's/^/  | /' "$tmp/q"; fail=1
fi
# The middle vbusd logged the refusals, and is still healthy: the same guest again works.
grep -q "max-objects\|max-pinned" "$tmp/mid.log" ||
	{ echo "FAIL: the nested vbusd logged no quota refusal"; fail=1; }
mid guest show >/dev/null || { echo "FAIL: the nested vbusd does not answer"; fail=1; }
kill -0 "$MID_PID" || { echo "FAIL: the nested vbusd died"; cat "$tmp/mid.log"; fail=1; }
[ $fail = 0 ] || { echo "nested vbusd log:"; tail -n 40 "$tmp/mid.log" | sed 's/^/  mid| /'; }
exit $fail
