#!/bin/bash
# tests/guest/integrity.c (every byte of random RC, UC and UD traffic checked: many QPs,
# random opcodes, sizes, offsets, SGEs, inline, signaling; guards around every target)
# natively first, as the control, then with a process guest as client, as server and as
# both, through vbusd on soft-RoCE. One line per path with each side's summary. Then the
# checks are checked: native runs with one request spoilt on purpose (-X) must fail. The
# native runs (the control and -X) run once per suite (vd_controls, tests/lib/vbusd.sh).
# VBUS_IG_ARGS: more arguments for the client (e.g. "-T 30 -n 8"); the seed is printed.
# Each path runs 5 s of traffic (about 100 rounds here), 8 s under VBUS_FULL=1 (make soak).
# The target says "ready" as soon as its receives are posted (native timing): a guest's
# ibv_post_recv returns once the relay has posted them (docs/verbs.md). VBUS_IG_WAIT=USEC
# pauses in between (-w); with VBUS_RECV_WAIT_US=0 (asynchronous receive posting) a SEND
# that comes first is RNR-NAKed, after which soft-RoCE in Linux 6.1 can leave an RC QP
# stalled (reproduced natively with -L, which posts receives late).
# timeout: 300
# soak-timeout: 600
. "${VBUS_TOP:?}/bench/lib/perftest.sh"
. "$VBUS_TOP/tests/lib/vbusd.sh"
pt_need_device
prog=${VBUS_BUILD:-$VBUS_TOP/build/default}/tests/guest/integrity
[ -x "$prog" ] || { echo "FAIL: $prog not built"; exit 1; }
vd_start t vrdma0 || exit 1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"; vd_stop' EXIT
seed=${VBUS_IG_SEED:-$(( (RANDOM << 16) | RANDOM ))}
secs=5	# of traffic per path (make soak, VBUS_FULL=1: the program's 8)
[ "${VBUS_FULL:-0}" = 1 ] && secs=8

# ig_run CLIENT SERVER [CLIENT-ARGS...]: 0 when both sides exit 0; their output in
# $tmp/client and $tmp/server.
ig_run() {
	local port=$PT_PORT spid crc src
	PT_PORT=$((PT_PORT + 1))
	vd_as "$1" "$2"
	shift 2
	timeout -k 5 "$(vt_secs 120)" "${PP_SERVER_WRAP[@]}" "$prog" -d "$PP_SERVER_DEV" -g "$VBUS_GID_INDEX" \
		-p "$port" >"$tmp/server" 2>&1 &
	spid=$!
	pt_wait_listen "$port" "$spid" || { echo "server did not listen"; kill "$spid" 2>/dev/null; return 1; }
	# shellcheck disable=SC2086
	timeout -k 5 "$(vt_secs 120)" "${PP_CLIENT_WRAP[@]}" "$prog" -d "$PP_CLIENT_DEV" -g "$VBUS_GID_INDEX" \
		-p "$port" -s "$seed" -w "${VBUS_IG_WAIT:-0}" -T "$secs" ${VBUS_IG_ARGS:-} "$@" "$VBUS_IP" >"$tmp/client" 2>&1
	crc=$?
	wait "$spid"
	src=$?
	echo "client exit $crc, server exit $src"
	[ $crc = 0 ] && [ $src = 0 ]
}

echo "seed $seed (VBUS_IG_SEED=$seed repeats this run)"
fail=0
paths=("native native" "guest native" "native guest" "guest guest") xs="data length write read atomic imm"
vd_controls || { paths=("${paths[@]:1}") xs=; echo "info the native control and -X checks run in the kernel variant"; }
for p in "${paths[@]}"; do
	if ig_run $p >"$tmp/rc"; then
		echo "ok   integrity, client/server ${p/ /\/}:"
		grep -h ': [rcud]*: \|rounds in' "$tmp/client" "$tmp/server" | sed 's/^/  /'
	else
		echo "FAIL integrity, client/server ${p/ /\/} ($(cat "$tmp/rc"))"
		sed 's/^/  client| /' "$tmp/client"
		sed 's/^/  server| /' "$tmp/server"
		fail=1
		# The control failing means the test, not vbus, is wrong: say so and stop.
		[ "$p" = "native native" ] && { echo "the native control failed"; exit 1; }
	fi
done
for kind in $xs; do
	if ig_run native native -i 8 -X "$kind" >"$tmp/rc"; then
		echo "FAIL integrity -X $kind passed: the checks missed a spoilt request"; fail=1
	elif grep -q "injected a fault" "$tmp/client" && e=$(cat "$tmp/client" "$tmp/server" | grep -m1 ERROR); then
		echo "ok   integrity -X $kind fails as it must: ${e#integrity }"
	else
		echo "FAIL integrity -X $kind: no fault injected or no error named ($(cat "$tmp/rc"))"
		sed 's/^/  client| /' "$tmp/client"; sed 's/^/  server| /' "$tmp/server"; fail=1
	fi
done
exit $fail
