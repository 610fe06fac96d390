#!/bin/bash
# Nesting in relay mode, depth 2 to 4 (docs/nesting.md): a host vbusd on rxe0 (VD_BACKEND at depth 0), a second
# vbusd run as its guest under vbus-run that backs its own bus's vrdma device with the
# vrdma device it sees (relay mode: it forwards everything), and a nested guest on that
# bus (depth 0 on either backend; the middle vbusd is relay, the only backend on a vbus
# device). From the nested guest to a native peer: ibv_rc_pingpong -c and the integrity
# program; two more relay-mode middles below it: perftest (ib_write_lat, ib_send_lat,
# ib_write_bw) from depths 2 and 3, ibv_rc_pingpong -c and the integrity program from a
# depth-3 guest to a depth-2 guest under another middle (and ib_write_lat), and from depth 3
# and 4 ibv_rc_pingpong -c,
# from depth 4 the integrity program, a depth-4 guest past its quotas, and SIGKILL of the
# depth-2 middle under a depth-4 guest (DEVICE_FATAL within a scaled 1 s). Refusals: the middle vbusd may not give its guests more than its own attachment
# (max-objects, max-pinned, another GID index, backend=kernel), and a nested guest past its
# QP quota and its pinned-byte quota gets an error while its parent's objects are untouched.
# Then SIGKILL of a middle vbusd while its nested guests work: they get DEVICE_FATAL (one
# within a scaled 1 s), a sibling middle vbusd's nested guest goes on (integrity passes),
# and rdma res show is back to its baseline. Before the kill, depth 0's guest show names on
# the middle's handles which of the middle's guests each serves (the DEVOPEN label). Last,
# `dev del` at depth 0 reaches a nested guest of a relay middle as DEVICE_FATAL, and the
# middle removes its device.
# timeout: 300
# backends: kernel
# soak-backends: kernel relay
. "${VBUS_TOP:?}/tests/lib/pingpong.sh"
. "$VBUS_TOP/tests/lib/vbusd.sh"
. "$VBUS_TOP/tests/lib/nest.sh"
pt_need_device
ig=${VBUS_BUILD:-$VBUS_TOP/build/default}/tests/guest/integrity
mem=${VBUS_BUILD:-$VBUS_TOP/build/default}/tests/guest/nest-quota
pe=${VBUS_BUILD:-$VBUS_TOP/build/default}/tests/guest/port-events
[ -x "$ig" ] && [ -x "$mem" ] && [ -x "$pe" ] || { echo "FAIL: $ig, $mem or $pe not built"; exit 1; }
# depth 0: max-objects 256, max-pinned 128 MiB for its guests, the middle vbusd among them
VD_DEV_ARGS="max-objects=256 max-pinned=134217728" vd_start t vrdma0 || exit 1
res_counts() { # "qp cq mr pd" object counts of rdma res show
	local k out=""
	for k in qp cq mr pd; do out+="$(rdma res show "$k" 2>/dev/null | grep -c .) "; done
	echo "${out% }"
}
base=$(res_counts)
RUN1=$(mktemp -d /tmp/vbus-nest.XXXXXX)
RUN2=$(mktemp -d /tmp/vbus-nest.XXXXXX)
RUN3=$(mktemp -d /tmp/vbus-nest.XXXXXX)
RUNA=$(mktemp -d /tmp/vbus-nest.XXXXXX)
RUNB=$(mktemp -d /tmp/vbus-nest.XXXXXX)
tmp=$(mktemp -d)
mid() { "$VD_BIN/vbusctl" --run-dir "$RUN1" "$@"; }
cleanup() {
	local p
	for p in ${MIDB_PID:-} ${MIDA_PID:-} ${MID_PID:-} ${MID2_PID:-} ${MID3_PID:-}; do
		vd_term "$p" || true
	done
	rm -rf "$RUN1" "$RUN2" "$RUN3" "$RUNA" "$RUNB" "$tmp"
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
	elif grep -q "wider than this vbusd's own attachment\|kernel backend needs a real\|vbus_vrdma kernel module is not loaded" <<<"$out"; then
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

# Depth 1 beside it, in this run (the middle vbusd idle): what one level costs.
PP_SERVER_WRAP=() PP_SERVER_DEV=$VBUS_RXE PP_CLIENT_WRAP=("${VD_RUN[@]}") PP_CLIENT_DEV=vrdma0
if pp_run ibv_rc_pingpong 500 -c >"$tmp/pp" 2>&1; then
	echo "ok   ibv_rc_pingpong -c, depth-1 guest to native: $(grep -m1 'client| .*iters in' "$tmp/pp")"
else
	echo "FAIL ibv_rc_pingpong -c, depth-1 guest to native"; sed 's/^/  | /' "$tmp/pp"; fail=1
fi
# The nested guest (depth 2) to a native peer.
PP_CLIENT_WRAP=("${NEST[@]}")
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
# RC's ACK timeout is 4 s (-A 20), as in guest-load: on this loaded 2-vCPU VM a 67 ms one
# expires, and soft-RoCE 6.1's retries then went wrong in CI once (a retried atomic's
# result differed and a send completion never came, in the sibling's run below).
seed=${VBUS_IG_SEED:-$(( (RANDOM << 16) | RANDOM ))}
port=$PT_PORT
timeout -k 5 "$(vt_secs 120)" "$ig" -d "$VBUS_RXE" -g "$VBUS_GID_INDEX" -p "$port" >"$tmp/igs" 2>&1 &
spid=$!
if pt_wait_listen "$port" "$spid" &&
   timeout -k 5 "$(vt_secs 180)" "${NEST[@]}" "$ig" -d vrdma0 -g "$VBUS_GID_INDEX" -p "$port" \
	-s "$seed" -A 20 ${VBUS_IG_ARGS:-} "$VBUS_IP" >"$tmp/igc" 2>&1 && wait "$spid"; then
	echo "ok   integrity (seed $seed), depth-2 guest to native:"
	grep -h ': [rcud]*: \|rounds in' "$tmp/igc" | sed 's/^/  /'
else
	echo "FAIL integrity (seed $seed), depth-2 guest to native"
	sed 's/^/  client| /' "$tmp/igc"; sed 's/^/  server| /' "$tmp/igs"; fail=1
	kill "$spid" 2>/dev/null
fi

# Relay mode deeper: MIDA at depth 2 (a guest of this middle's vrdma0) and MIDB at depth 3
# (a guest of MIDA), each running its own relay on the device it sees, each device with its
# parent's limits (the integrity program pins about 54 MB, at every level of relay mode).
# ibv_rc_pingpong -c from depth 3 and 4 and the integrity program from depth 4, to
# native; then both middles go.
mid_chain() { # PID-VAR RUN LOG WRAP...: a relay-mode middle under WRAP
	local -n pid=$1
	local run=$2 log=$3
	shift 3
	"$@" "$VD_BIN/vbusd" --run-dir "$run" 2>"$log" &
	pid=$!
	vt_until 10 test -S "$run/ctl.sock" &&
	"$VD_BIN/vbusctl" --run-dir "$run" bus add n allow all >/dev/null &&
	"$VD_BIN/vbusctl" --run-dir "$run" dev add vrdma0 class vrdma backing=vrdma0 bus n >/dev/null ||
		{ echo "FAIL: a relay-mode middle in $run"; cat "$log"; exit 1; }
}
mid_chain MIDA_PID "$RUNA" "$tmp/mida.log" "${NEST[@]}"
NEST3=("$VD_BIN/vbus-run" --run-dir "$RUNA" --bus n --)
mid_chain MIDB_PID "$RUNB" "$tmp/midb.log" "${NEST3[@]}"
NEST4=("$VD_BIN/vbus-run" --run-dir "$RUNB" --bus n --)
# perftest from depths 2 and 3 to native (at depth 3 perftest may refuse its clock
# calibration with two relays busy on 2 vCPUs: that run then shows "clock"), and between
# two nested guests under different middles: ibv_rc_pingpong -c, the integrity program and
# ib_write_lat from a depth-3 guest (under MIDA) to a depth-2 guest (under the first
# middle).
PT_PORT=$((PT_PORT + 50))
perf_runs 2 NEST "${PERF3[@]}"
perf_runs 3 NEST3 "${PERF3[@]}"
PP_SERVER_WRAP=("${NEST[@]}") PP_SERVER_DEV=vrdma0 PP_CLIENT_WRAP=("${NEST3[@]}") PP_CLIENT_DEV=vrdma0
if pp_run ibv_rc_pingpong 200 -c >"$tmp/pp" 2>&1; then
	echo "ok   ibv_rc_pingpong -c, depth-3 guest (MIDA) to depth-2 guest: $(grep -m1 'client| .*iters in' "$tmp/pp")"
else
	echo "FAIL ibv_rc_pingpong -c, depth-3 guest (MIDA) to depth-2 guest"; sed 's/^/  | /' "$tmp/pp"; fail=1
fi
ig_pair "depth-3 guest (MIDA) to depth-2 guest (the first middle)" vrdma0 NEST3 "${NEST[@]}"
PT_CLIENT_WRAP=("${NEST3[@]}") PT_CLIENT_DEV=vrdma0 PT_SERVER_WRAP=("${NEST[@]}") PT_SERVER_DEV=vrdma0
if pt_run ib_write_lat "$tmp/pto" -n 500 >"$tmp/ptlog" 2>&1 && v=$(pt_figure "$tmp/pto" t_typical_us); then
	echo "ok   ib_write_lat -n 500, depth-3 guest (MIDA) to depth-2 guest: t_typical_us $v"
else
	echo "FAIL ib_write_lat, depth-3 guest (MIDA) to depth-2 guest"; tail -n 20 "$tmp/ptlog" "$tmp/pto" 2>/dev/null; fail=1
fi
PP_SERVER_WRAP=() PP_SERVER_DEV=$VBUS_RXE PP_CLIENT_DEV=vrdma0
for d in 3 4; do
	declare -n w=NEST$d
	PP_CLIENT_WRAP=("${w[@]}")
	unset -n w
	if pp_run ibv_rc_pingpong 200 -c >"$tmp/pp" 2>&1; then
		echo "ok   ibv_rc_pingpong -c, depth-$d guest (relay mode) to native: $(grep -m1 'client| .*iters in' "$tmp/pp")"
	else
		echo "FAIL ibv_rc_pingpong -c, depth-$d guest (relay mode) to native"; sed 's/^/  | /' "$tmp/pp"; fail=1
	fi
done
seed=${VBUS_IG_SEED:-$(( (RANDOM << 16) | RANDOM ))}
port=$((PT_PORT + 40))
timeout -k 5 "$(vt_secs 180)" "$ig" -d "$VBUS_RXE" -g "$VBUS_GID_INDEX" -p "$port" >"$tmp/igs" 2>&1 &
spid=$!
if pt_wait_listen "$port" "$spid" &&
   timeout -k 5 "$(vt_secs 120)" "${NEST4[@]}" "$ig" -d vrdma0 -g "$VBUS_GID_INDEX" -p "$port" \
	-s "$seed" -T 5 -A 20 ${VBUS_IG_ARGS:-} "$VBUS_IP" >"$tmp/igc" 2>&1 && wait "$spid"; then
	echo "ok   integrity (seed $seed), depth-4 guest (relay mode) to native: $(grep -h 'rounds in' "$tmp/igc")"
else
	echo "FAIL integrity (seed $seed), depth-4 guest (relay mode) to native"
	sed 's/^/  client| /' "$tmp/igc"; sed 's/^/  server| /' "$tmp/igs"; fail=1
	kill "$spid" 2>/dev/null; wait "$spid" 2>/dev/null
fi
# At depth 4 too: a guest past its quotas (MIDB's vq: 16 objects, 8 MiB) gets its errors,
# and SIGKILL of MIDA (depth 2) reaches a depth-4 guest waiting with a QP as DEVICE_FATAL
# (through MIDB, whose contexts die with MIDA's bus), within a scaled 1 s; MIDB then
# removes its device and goes on answering.
lim=$(awk -v s="${VBUS_TIME_SCALE:-$VT_FLOOR}" 'BEGIN{printf "%d", 1000 * s}')	# 1 s, scaled
# fatal_after FILE WHAT CMD...: run CMD (a middle's death, an unplug); the guest below,
# waiting with a QP (guest/port-events fatal, writing FILE), must get DEVICE_FATAL within
# lim ms of it.
fatal_after() {
	local file=$1 what=$2 t0 ms
	shift 2
	t0=$(date +%s%N)
	"$@" || { echo "FAIL: $*"; fail=1; }
	vt_until 10 grep -q "ok   IBV_EVENT_DEVICE_FATAL" "$file"
	ms=$(( ($(date +%s%N) - t0) / 1000000 ))
	if grep -q "ok   IBV_EVENT_DEVICE_FATAL" "$file" && [ "$ms" -le "$lim" ]; then
		echo "ok   $what got DEVICE_FATAL in $ms ms (limit $lim ms)"
	else
		echo "FAIL: $what: DEVICE_FATAL after $ms ms (limit $lim ms)"; sed 's/^/  | /' "$file"; fail=1
	fi
}
kill_mid() { # PID-VAR: SIGKILL that middle, reap it, empty the variable
	local -n kpid=$1
	kill -KILL "$kpid"
	wait "$kpid" 2>/dev/null
	kpid=
}
"$VD_BIN/vbusctl" --run-dir "$RUNB" dev add vq class vrdma backing=vrdma0 max-objects=16 \
	max-pinned=8388608 bus n >/dev/null || { echo "FAIL: dev add vq in MIDB"; cat "$tmp/midb.log"; exit 1; }
if timeout -k 5 "$(vt_secs 60)" "${NEST4[@]}" "$mem" vq 16 8388608 "$VBUS_GID_INDEX" >"$tmp/q4" 2>&1; then
	echo "ok   depth-4 guest past its quotas (relay mode): $(grep -c '^ok' "$tmp/q4") checks"
else
	echo "FAIL depth-4 guest past its quotas (relay mode)"; sed 's/^/  | /' "$tmp/q4"; fail=1
fi
timeout -k 2 "$(vt_secs 60)" "${NEST4[@]}" "$pe" fatal >"$tmp/fatal4" 2>&1 &
fpid4=$!
vt_wait_for "$tmp/fatal4" ready 20 $fpid4 || { echo "FAIL: the depth-4 guest did not get ready"; cat "$tmp/fatal4"; exit 1; }
fatal_after "$tmp/fatal4" "depth-2 middle SIGKILLed: the depth-4 guest" kill_mid MIDA_PID
wait "$fpid4" || { echo "FAIL: the depth-4 guest's checks after DEVICE_FATAL"; sed 's/^/  | /' "$tmp/fatal4"; fail=1; }
if vt_until 10 sh -c "! \"$VD_BIN/vbusctl\" --run-dir '$RUNB' dev show | grep -q 'dev vrdma0 '" &&
   "$VD_BIN/vbusctl" --run-dir "$RUNB" guest show >/dev/null; then
	echo "ok   and MIDB (depth 3) removed its vrdma0 (its backing is gone) and answers"
else
	echo "FAIL: MIDB after its parent's SIGKILL: $("$VD_BIN/vbusctl" --run-dir "$RUNB" dev show 2>&1 | head -3)"; fail=1
fi
vd_term "$MIDB_PID" || { echo "FAIL: MIDB did not exit on SIGTERM (killed)"; fail=1; }
MIDB_PID=

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

# SIGKILL of a middle level mid-traffic. A sibling: a second vbusd under bus t, its nested
# guest running the integrity program to a native server for the whole time.
"${VD_RUN[@]}" "$VD_BIN/vbusd" --run-dir "$RUN2" 2>"$tmp/mid2.log" &
MID2_PID=$!
vt_until 10 test -S "$RUN2/ctl.sock" &&
"$VD_BIN/vbusctl" --run-dir "$RUN2" bus add m allow all >/dev/null &&
"$VD_BIN/vbusctl" --run-dir "$RUN2" dev add vrdma0 class vrdma backing=vrdma0 bus m >/dev/null ||
	{ echo "FAIL: the sibling vbusd"; cat "$tmp/mid2.log"; exit 1; }
port=$((PT_PORT + 10))
timeout -k 5 "$(vt_secs 120)" "$ig" -d "$VBUS_RXE" -g "$VBUS_GID_INDEX" -p "$port" >"$tmp/sibs" 2>&1 &
sib_s=$!
pt_wait_listen "$port" "$sib_s" || { echo "FAIL: integrity server did not listen"; exit 1; }
timeout -k 5 "$(vt_secs 180)" "$VD_BIN/vbus-run" --run-dir "$RUN2" --bus m -- "$ig" -d vrdma0 \
	-g "$VBUS_GID_INDEX" -p "$port" -s "$seed" -T 20 -i 100000 -A 20 "$VBUS_IP" >"$tmp/sibc" 2>&1 &
sib_c=$!
# Under the victim: a guest waiting for DEVICE_FATAL with a QP, and ibv_rc_pingpong busy.
timeout -k 2 "$(vt_secs 60)" "${NEST[@]}" "$pe" fatal >"$tmp/fatal" 2>&1 &
fpid=$!
port2=$((PT_PORT + 11))
timeout -k 2 "$(vt_secs 120)" ibv_rc_pingpong -d "$VBUS_RXE" -g "$VBUS_GID_INDEX" -p "$port2" -n 1000000 >"$tmp/pps" 2>&1 &
pps=$!
pt_wait_listen "$port2" "$pps" || { echo "FAIL: pingpong server did not listen"; exit 1; }
timeout -k 2 "$(vt_secs 120)" "${NEST[@]}" ibv_rc_pingpong -d vrdma0 -g "$VBUS_GID_INDEX" -p "$port2" -n 1000000 "$VBUS_IP" >"$tmp/ppc" 2>&1 &
ppc=$!
vt_wait_for "$tmp/fatal" ready 20 $fpid || { echo "FAIL: the nested guest did not get ready"; cat "$tmp/fatal"; exit 1; }
sleep 3
during=$(res_counts)
# The tree: depth 0 shows, on the middle's handles, which of the middle's guests each serves
# (its DEVOPEN label, "for": [{"guest": ID, "pid": PID}]), and they are the middle's guests.
if command -v jq >/dev/null; then
	# (the middle is depth 0's guest of pid MID_PID: vbus-run execs it)
	vd_ctl -j guest show >"$tmp/g0.json" 2>&1; mid -j guest show >"$tmp/g1.json" 2>&1
	for0=$(jq -c --argjson p "$MID_PID" \
		'[.[] | select(.pid == $p) | .devices[] | select(.for) | .for[0]] | sort' "$tmp/g0.json" 2>/dev/null)
	mids=$(jq -c '[.[] | {guest: .id, pid: .pid}]' "$tmp/g1.json" 2>/dev/null)
	n=$(jq -n --argjson f "${for0:-null}" --argjson m "${mids:-null}" \
		'if ($f | type) == "array" and ($m | type) == "array" then [$f[] | select(. as $x | $m | index([$x]))] | length else -1 end')
	if [ "${n:--1}" -ge 2 ] && [ "$n" = "$(jq length <<<"$for0")" ]; then
		echo "ok   depth 0's guest show names the middle's guests its handles serve: $for0"
	else
		echo "FAIL: depth 0's tree: for $for0, the middle's guests $mids"
		sed 's/^/  d0| /' "$tmp/g0.json" | head -c 3000; fail=1
	fi
	vd_ctl guest show | grep -q " for guest [0-9]* pid [0-9]*" &&
		echo "ok   and in text: $(vd_ctl guest show | grep -m1 ' for guest')" ||
		{ echo "FAIL: depth 0's text guest show has no 'for guest' line"; fail=1; }
else
	echo "FAIL: jq missing (make deps installs it)"; fail=1
fi
kill -0 "$ppc" || { echo "FAIL: the nested ibv_rc_pingpong ended before the kill"; cat "$tmp/ppc"; fail=1; }
fatal_after "$tmp/fatal" "middle vbusd SIGKILLed: its nested guest" kill_mid MID_PID
wait "$fpid" || { echo "FAIL: the nested guest's checks after DEVICE_FATAL"; sed 's/^/  | /' "$tmp/fatal"; fail=1; }
# ibv_rc_pingpong polls its CQ until a completion comes: none comes any more (as natively
# after a device fatal), so it either failed a verb or still polls: end it then.
if vt_until 1 sh -c "! kill -0 $ppc 2>/dev/null"; then
	how="it exited: $(grep -m1 -i 'fail\|error\|couldn' "$tmp/ppc")"
else
	how="it still polled its CQ, killed"
	kill "$ppc"
fi
if wait "$ppc"; then
	echo "FAIL: the nested ibv_rc_pingpong finished 1000000 iterations through a dead vbusd"; fail=1
else
	echo "ok   the nested ibv_rc_pingpong got nothing more after the kill ($how)"
fi
kill "$pps" 2>/dev/null; wait "$pps" 2>/dev/null
if wait "$sib_c" && wait "$sib_s"; then
	echo "ok   the sibling's nested guest went on: $(grep -h 'rounds in' "$tmp/sibc")"
else
	echo "FAIL: the sibling's nested integrity run"; sed 's/^/  client| /' "$tmp/sibc"
	sed 's/^/  server| /' "$tmp/sibs"; fail=1
fi
kill -TERM "$MID2_PID"; wait "$MID2_PID"; MID2_PID=
if vt_until 10 sh -c "[ \"\$(for k in qp cq mr pd; do rdma res show \$k 2>/dev/null | grep -c .; done | xargs)\" = '$base' ]"; then
	echo "ok   rdma res back to its baseline (qp cq mr pd: $base; during: $during)"
else
	echo "FAIL: rdma res $(res_counts), baseline $base"; fail=1
fi
# Unplug at depth 0 under a relay middle: `dev del vrdma0` at depth 0 while a nested guest of
# a third middle vbusd (MID3) waits with a QP. The middle's contexts get DEVICE_FATAL, its
# relay forwards it to the nested guest's context (within a scaled 1 s), its own device
# goes (its gone check, about once a second), and it goes on answering.
"${VD_RUN[@]}" "$VD_BIN/vbusd" --run-dir "$RUN3" 2>"$tmp/mid3.log" &
MID3_PID=$!
mid3() { "$VD_BIN/vbusctl" --run-dir "$RUN3" "$@"; }
vt_until 10 test -S "$RUN3/ctl.sock" && mid3 bus add n allow all >/dev/null &&
mid3 dev add vrdma0 class vrdma backing=vrdma0 bus n >/dev/null ||
	{ echo "FAIL: the third middle vbusd"; cat "$tmp/mid3.log"; exit 1; }
timeout -k 2 "$(vt_secs 60)" "$VD_BIN/vbus-run" --run-dir "$RUN3" --bus n -- "$pe" fatal >"$tmp/fatal3" 2>&1 &
fpid3=$!
vt_wait_for "$tmp/fatal3" ready 20 $fpid3 || { echo "FAIL: MID3's nested guest did not get ready"; cat "$tmp/fatal3"; exit 1; }
fatal_after "$tmp/fatal3" "dev del at depth 0: the nested guest under a relay middle" \
	vd_ctl dev del vrdma0
wait "$fpid3" || { echo "FAIL: MID3's nested guest's checks after DEVICE_FATAL"; sed 's/^/  | /' "$tmp/fatal3"; fail=1; }
if vt_until 10 sh -c "! \"$VD_BIN/vbusctl\" --run-dir '$RUN3' dev show | grep -q vrdma0" &&
   mid3 guest show >/dev/null; then
	echo "ok   and MID3 removed its vrdma0 (its backing is gone) and answers"
else
	echo "FAIL: MID3 after the unplug below it: $(mid3 dev show 2>&1 | head -3)"; fail=1
fi
vd_term "$MID3_PID" || { echo "FAIL: MID3 did not exit on SIGTERM (killed)"; fail=1; }
MID3_PID=
if vt_until 10 sh -c "[ \"\$(for k in qp cq mr pd; do rdma res show \$k 2>/dev/null | grep -c .; done | xargs)\" = '$base' ]"; then
	echo "ok   rdma res back to its baseline after the unplug"
else
	echo "FAIL: rdma res $(res_counts) after the unplug, baseline $base"; fail=1
fi
[ $fail = 0 ] || { echo "nested vbusd log:"; tail -n 40 "$tmp/mid.log" | sed 's/^/  mid| /'; }
exit $fail
