#!/bin/bash
# Nesting in passthrough mode (docs/nesting.md, "Passthrough"): a host vbusd on rxe0, a
# middle vbusd M1 run as its guest whose vrdma device is mode=passthrough (each of its guests
# gets a child of M1's own attachment: on the kernel backend in the module, VBK_IOC_CHILD;
# on the relay backend a child connection at depth 0, VBUS_OP_CHILD, whose relay serves the
# guest's own rings), and a second middle vbusd M2 run as a guest of M1, passthrough too.
#   - kernel: guest/nest-child at depth 1: the module's refusals of children wider than their
#     parent (EPERM, EDQUOT, EINVAL, ELOOP, EMLINK), charges to ancestors, subtree revocation;
#     relay: guest/nest-child's relay mode: VBUS_OP_CHILD refused wider (EPERM), zero
#     objects (EINVAL); a child's objects charged to its parent (EDQUOT), its end with the
#     parent's handle;
#   - a middle vbusd refuses a passthrough device wider than its own attachment;
#   - depth 2, 3 and 4 (a third middle M4 at depth 3, a guest of M2): ibv_rc_pingpong -c and
#     the integrity program to a native peer, and from depth 4 to 3; perftest from depths
#     2 and 3;
#   - depth 0's guest show and res show show the tree: M2's child function under M1's
#     handle, M4's under M2's, with the ids the middles gave them and their pids (relay:
#     the child connections, each child_of its parent, their handles labelled for M2, M4);
#   - ib_send_lat and ib_write_bw 64 KiB from depth 4, ib_write_lat from depth 4 to 3;
#     with M1, M2 and M4 SIGSTOPped, a
#     depth-4 ib_write_lat to a native server completes (no middle level is on the data path);
#   - a depth-1 guest, M1's sibling, runs the integrity program through M1's SIGKILL;
#   - SIGKILL of M1, or `dev del` in a middle M3 or at depth 0 under M3's depth-2 guest/revoke
#     (relay: guest/port-events fatal): the guests below get DEVICE_FATAL within a scaled
#     1 s, rdma res show is back to its baseline.
# backends: kernel
# soak-backends: kernel relay
# timeout: 300
. "${VBUS_TOP:?}/tests/lib/pingpong.sh"
. "$VBUS_TOP/tests/lib/vbusd.sh"
. "$VBUS_TOP/tests/lib/nest.sh"
pt_need_device
B=${VBUS_BUILD:-$VBUS_TOP/build/default}/tests/guest
ig=$B/integrity nc=$B/nest-child ncr=$B/nest-child-relay pe=$B/port-events rv=$B/revoke
[ -x "$ig" ] && [ -x "$nc" ] && [ -x "$ncr" ] && [ -x "$pe" ] && [ -x "$rv" ] ||
	{ echo "FAIL: $ig, $nc, $pe or $rv not built"; exit 1; }
# depth 0: 256 objects, 128 MiB pinned for each of its guests (M1 among them)
VD_DEV_ARGS="max-objects=256 max-pinned=134217728" vd_start t vrdma0 || exit 1
KB=0
grep -q "backend kernel" "$VD_RUN_DIR/vbusd.log" && KB=1
[ "${VD_BACKEND:-}" = kernel ] && [ $KB = 0 ] &&
	{ echo "SKIP: depth 0 is not on the kernel backend"; exit 77; }
BACKEND=$([ $KB = 1 ] && echo kernel || echo relay)
res_counts() { # "qp cq mr pd" object counts of rdma res show
	local k out=""
	for k in qp cq mr pd; do out+="$(rdma res show "$k" 2>/dev/null | grep -c .) "; done
	echo "${out% }"
}
base=$(res_counts)
RUN1=$(mktemp -d /tmp/vbus-npt.XXXXXX)
RUN2=$(mktemp -d /tmp/vbus-npt.XXXXXX)
RUN3=$(mktemp -d /tmp/vbus-npt.XXXXXX)
RUN4=$(mktemp -d /tmp/vbus-npt.XXXXXX)
tmp=$(mktemp -d)
m1() { "$VD_BIN/vbusctl" --run-dir "$RUN1" "$@"; }
m2() { "$VD_BIN/vbusctl" --run-dir "$RUN2" "$@"; }
m3() { "$VD_BIN/vbusctl" --run-dir "$RUN3" "$@"; }
cleanup() {
	local p
	for p in ${M3_PID:-} ${M4_PID:-} ${M2_PID:-} ${M1_PID:-}; do
		kill -CONT "$p" 2>/dev/null
		vd_term "$p" || echo "a middle vbusd (pid $p) did not exit on SIGTERM: killed"
	done
	rm -rf "$RUN1" "$RUN2" "$RUN3" "$RUN4" "$tmp"
	vd_stop
}
trap cleanup EXIT
fail=0

# The module's own checks (relay: the bus's), from a depth-1 guest on its own attachment.
what=$([ $KB = 1 ] && echo VBK_IOC_CHILD || echo VBUS_OP_CHILD)
if timeout -k 5 "$(vt_secs 30)" "${VD_RUN[@]}" "$([ $KB = 1 ] && echo "$nc" || echo "$ncr")" vrdma0 >"$tmp/nc" 2>&1; then
	sed 's/^/  /' "$tmp/nc"; echo "ok   $what checks: $(grep -c '^ok' "$tmp/nc") groups"
else
	echo "FAIL $what checks"; sed 's/^/  | /' "$tmp/nc"; fail=1
fi

# M1 (depth 1), a passthrough device vrdma0 on its bus n.
"${VD_RUN[@]}" "$VD_BIN/vbusd" --run-dir "$RUN1" 2>"$tmp/m1.log" &
M1_PID=$!
vt_until 10 test -S "$RUN1/ctl.sock" || { echo "FAIL: M1 did not start"; cat "$tmp/m1.log"; exit 1; }
m1 bus add n allow all >/dev/null || { echo "FAIL: bus add in M1"; exit 1; }
if out=$(m1 dev add vx class vrdma backing=vrdma0 mode=passthrough max-objects=257 bus n 2>&1); then
	echo "FAIL: M1 took a passthrough device wider than its attachment: $out"; fail=1
else
	echo "ok   refused: $out"
fi
m1 dev add vrdma0 class vrdma backing=vrdma0 mode=passthrough bus n >/dev/null ||
	{ echo "FAIL: dev add mode=passthrough in M1"; cat "$tmp/m1.log"; exit 1; }
m1 dev show >"$tmp/show" 2>&1
grep -q "mode=passthrough" "$tmp/show" && grep -q "backend=$BACKEND" "$tmp/show" ||
	{ echo "FAIL: M1's device: $(cat "$tmp/show")"; fail=1; }
N2=("$VD_BIN/vbus-run" --run-dir "$RUN1" --bus n --)

depth_runs() { # DEPTH WRAP-ARRAY: ibv_rc_pingpong -c, integrity and perftest (depths 2 and 3), nested client, native server
	local d=$1
	local -n w=$2
	PP_SERVER_WRAP=() PP_SERVER_DEV=$VBUS_RXE PP_CLIENT_WRAP=("${w[@]}") PP_CLIENT_DEV=vrdma0
	if pp_run ibv_rc_pingpong 500 -c >"$tmp/pp" 2>&1; then
		echo "ok   ibv_rc_pingpong -c, depth-$d guest to native: $(grep -m1 'client| .*iters in' "$tmp/pp")"
	else
		echo "FAIL ibv_rc_pingpong -c, depth-$d guest to native"; sed 's/^/  | /' "$tmp/pp"; fail=1
	fi
	ig_pair "depth-$d guest to native" "$VBUS_RXE" "$2"
	[ "$d" -ge 4 ] || perf_runs "$d" "$2" "${PERF3[@]}"
}
depth_runs 2 N2

# M2 (depth 2), a guest of M1, passthrough too: vrdma0 with all of M2's own attachment
# (256 objects, 128 MiB) and vn with 64 objects and 64 MiB on bus m, and vs with 16 objects
# and 8 MiB on bus s. A child is refused (EDQUOT) when it asks for more than is left of its
# parent, so vrdma0's guests come first (M4 among them, which holds its child for good),
# and the depth-3 peers of depth-4 guests use vn.
"${N2[@]}" "$VD_BIN/vbusd" --run-dir "$RUN2" 2>"$tmp/m2.log" &
M2_PID=$!
vt_until 10 test -S "$RUN2/ctl.sock" || { echo "FAIL: M2 did not start"; cat "$tmp/m2.log"; exit 1; }
m2 bus add m allow all >/dev/null && m2 bus add s allow all >/dev/null &&
m2 dev add vrdma0 class vrdma backing=vrdma0 mode=passthrough bus m >/dev/null &&
m2 dev add vn class vrdma backing=vrdma0 mode=passthrough max-objects=64 max-pinned=67108864 bus m >/dev/null &&
m2 dev add vs class vrdma backing=vrdma0 mode=passthrough max-objects=16 max-pinned=8388608 bus s >/dev/null ||
	{ echo "FAIL: dev add mode=passthrough in M2"; cat "$tmp/m2.log"; exit 1; }
N3=("$VD_BIN/vbus-run" --run-dir "$RUN2" --bus m --)
depth_runs 3 N3

# M4 (depth 3), a guest of M2, passthrough too: vrdma0 on bus q, for a depth-4 guest.
"${N3[@]}" "$VD_BIN/vbusd" --run-dir "$RUN4" 2>"$tmp/m4.log" &
M4_PID=$!
vt_until 10 test -S "$RUN4/ctl.sock" || { echo "FAIL: M4 did not start"; cat "$tmp/m4.log"; exit 1; }
"$VD_BIN/vbusctl" --run-dir "$RUN4" bus add q allow all >/dev/null &&
"$VD_BIN/vbusctl" --run-dir "$RUN4" dev add vrdma0 class vrdma backing=vrdma0 mode=passthrough bus q >/dev/null ||
	{ echo "FAIL: dev add mode=passthrough in M4"; cat "$tmp/m4.log"; exit 1; }
N4=("$VD_BIN/vbus-run" --run-dir "$RUN4" --bus q --)
depth_runs 4 N4

# Between two nested guests under different middles, from depth 4 (under M4) to depth 3
# (under M2, on vn: M4's child is as wide as M2's attachment, so a depth-3 guest on M2's
# vrdma0 would be refused while M4 lives).
ig_pair "depth-4 guest (M4) to depth-3 guest (M2)" vn N4 "${N3[@]}"
PP_SERVER_WRAP=("${N3[@]}") PP_SERVER_DEV=vn PP_CLIENT_WRAP=("${N4[@]}") PP_CLIENT_DEV=vrdma0
if pp_run ibv_rc_pingpong 500 -c >"$tmp/pp" 2>&1; then
	echo "ok   ibv_rc_pingpong -c, depth-4 guest (M4) to depth-3 guest (M2): $(grep -m1 'client| .*iters in' "$tmp/pp")"
else
	echo "FAIL ibv_rc_pingpong -c, depth-4 guest (M4) to depth-3 guest (M2)"; sed 's/^/  | /' "$tmp/pp"; fail=1
fi

# The rest of perftest at depth 4 (ib_write_lat comes below, with the middles stopped).
perf_runs 4 N4 "${PERF3[@]:1}"
# and between the two nested guests under different middles
PT_SERVER_WRAP=("${N3[@]}") PT_SERVER_DEV=vn
if pt_run ib_write_lat "$tmp/pto" -n 500 >"$tmp/ptlog" 2>&1 && v=$(pt_figure "$tmp/pto" t_typical_us); then
	echo "ok   ib_write_lat -n 500, depth-4 guest (M4) to depth-3 guest (M2): t_typical_us $v"
else
	echo "FAIL ib_write_lat, depth-4 guest (M4) to depth-3 guest (M2)"; tail -n 20 "$tmp/ptlog" "$tmp/pto" 2>/dev/null; fail=1
fi

# Depth 0's view of the passthrough tree (VBK_IOC_TREE): under M1's handle, a child whose
# process is M2 and whose guest id is M2's id in M1; under it, one whose process is M4 (M2's
# guest), with M2's id for it; in guest show -j, in res show -j, and in text.
vd_ctl -j guest show >"$tmp/g0.json" 2>&1; vd_ctl -j res show >"$tmp/r0.json" 2>&1
m2_id=$(m1 -j guest show | jq --argjson p "$M2_PID" '[.[] | select(.pid == $p) | .id][0]')
m4_id=$(m2 -j guest show | jq --argjson p "$M4_PID" '[.[] | select(.pid == $p) | .id][0]')
tree_ok() { # JSON-FILE PATH-TO-M1'S-HANDLES: M2's node with M4's node under it, ids as named
	jq -e --argjson m1 "$M1_PID" --argjson m2 "$M2_PID" --argjson m4 "$M4_PID" \
		--argjson i2 "$m2_id" --argjson i4 "$m4_id" "
		[$2 | .children[]? | select(.pid == \$m2 and .guest == \$i2) |
		 .children[] | select(.pid == \$m4 and .guest == \$i4)] | length >= 1" "$1" >/dev/null
}
# relay: the child connections at depth 0, each child_of the one it was made of: one whose
# handle is labelled for M2 (as M1 knows it) under M1's own connection, and under it one
# labelled for M4 (as M2 knows it).
relay_tree_ok() {
	jq -e --argjson m1 "$M1_PID" --argjson m2 "$M2_PID" --argjson m4 "$M4_PID" \
		--argjson i2 "$m2_id" --argjson i4 "$m4_id" '
		def labelled($i; $p): any(.devices[]; any(.for[]?; .guest == $i and .pid == $p));
		. as $all | [$all[] | select(.pid == $m1 and (has("child_of") | not)) | .id] as $r |
		[$all[] | select(has("child_of") and (.child_of.guest as $g | $r | index($g))) |
		 select(labelled($i2; $m2)) | .id] as $c2 |
		[$all[] | select(has("child_of") and (.child_of.guest as $g | $c2 | index($g))) |
		 select(labelled($i4; $m4))] | length >= 1' "$1" >/dev/null
}
# and in res show: each child connection's handles child_of the handle it was made of
relay_res_tree_ok() {
	jq -e --argjson m1 "$M1_PID" --argjson m2 "$M2_PID" --argjson m4 "$M4_PID" \
		--argjson i2 "$m2_id" --argjson i4 "$m4_id" '
		def labelled($i; $p): any(.for[]?; .guest == $i and .pid == $p);
		. as $all | [$all[] | select(.pid == $m1 and (has("child_of") | not)) | .guest] as $r |
		[$all[] | select(has("child_of") and (.child_of.guest as $g | $r | index($g))) |
		 select(labelled($i2; $m2)) | .guest] as $c2 |
		[$all[] | select(has("child_of") and (.child_of.guest as $g | $c2 | index($g))) |
		 select(labelled($i4; $m4))] | length >= 1' "$1" >/dev/null
}
if [ $KB = 0 ]; then
	if relay_res_tree_ok "$tmp/r0.json"; then
		echo "ok   depth 0's res show: the same tree (each child connection's handle child_of its parent's)"
	else
		echo "FAIL: depth 0's res show has no child_of tree M1 > M2 > M4"
		sed 's/^/  res show| /' "$tmp/r0.json" | head -c 4000; fail=1
	fi
	if relay_tree_ok "$tmp/g0.json"; then
		echo "ok   depth 0's child connections: M1 (pid $M1_PID) > one for guest $m2_id pid $M2_PID (M2) > one for guest $m4_id pid $M4_PID (M4)"
	else
		echo "FAIL: depth 0 has no child connection for M2 (guest $m2_id pid $M2_PID) > M4 (guest $m4_id pid $M4_PID) under M1 (pid $M1_PID)"
		sed 's/^/  guest show| /' "$tmp/g0.json" | head -c 4000; fail=1
	fi
	vd_ctl guest show >"$tmp/g0.txt" 2>&1
	if grep -q " child-of guest [0-9]* handle " "$tmp/g0.txt"; then
		echo "ok   and in text: $(grep -m1 " child-of guest" "$tmp/g0.txt" | xargs)"
	else
		echo "FAIL: depth 0's text guest show has no child-of line"; sed 's/^/  | /' "$tmp/g0.txt"; fail=1
	fi
elif tree_ok "$tmp/g0.json" '.[] | select(.pid == $m1) | .devices[]' &&
   tree_ok "$tmp/r0.json" '.[] | select(.pid == $m1)'; then
	echo "ok   depth 0's tree: M1 (pid $M1_PID) > child for guest $m2_id pid $M2_PID (M2) > child for guest $m4_id pid $M4_PID (M4), in guest show and res show"
else
	echo "FAIL: depth 0's tree has no M2 (guest $m2_id pid $M2_PID) > M4 (guest $m4_id pid $M4_PID) under M1 (pid $M1_PID)"
	sed 's/^/  guest show| /' "$tmp/g0.json" | head -c 4000; fail=1
fi
[ $KB = 1 ] && vd_ctl guest show >"$tmp/g0.txt" 2>&1
if [ $KB = 0 ]; then
	:
elif grep -q "^    child for guest $m2_id pid $M2_PID objects" "$tmp/g0.txt" &&
   grep -q "^      child for guest $m4_id pid $M4_PID objects" "$tmp/g0.txt"; then
	echo "ok   and in text: $(grep -m1 "pid $M4_PID objects" "$tmp/g0.txt" | xargs)"
else
	echo "FAIL: depth 0's text guest show has no child lines for M2 and M4"; sed 's/^/  | /' "$tmp/g0.txt"; fail=1
fi

# SIGSTOP the three middles once the depth-4 ib_write_lat holds its descriptor: the run
# still completes (the native server finishes while they are stopped).
port=$PT_PORT; PT_PORT=$((PT_PORT + 1))
timeout -k 2 "$(vt_secs 60)" ib_write_lat -d "$VBUS_RXE" -x "$VBUS_GID_INDEX" -p "$port" -n 2000 >"$tmp/lats" 2>&1 &
lats=$!
pt_wait_listen "$port" "$lats" || { echo "FAIL: ib_write_lat server did not listen"; cat "$tmp/lats"; exit 1; }
"${N4[@]}" stdbuf -oL ib_write_lat -d vrdma0 -x "$VBUS_GID_INDEX" -p "$port" -n 2000 "$VBUS_IP" >"$tmp/latc" 2>&1 &
latc=$!
has_fd() { # PID: it or a child of it (under timeout) holds a [vbus-vrdma] descriptor
	local p
	for p in "$1" $(pgrep -P "$1"); do
		ls -l /proc/"$p"/fd 2>/dev/null | grep -q 'vbus-vrdma' && return 0
	done
	return 1
}
# kernel: the client holds its descriptor; relay: its QP is connected, the control calls
# done (perftest prints its results' header then, line-buffered by stdbuf).
lat_ready() { if [ $KB = 1 ]; then has_fd "$latc"; else grep -q t_typical "$tmp/latc"; fi; }
if vt_until 20 lat_ready; then
	kill -STOP "$M1_PID" "$M2_PID" "$M4_PID"
	t0=$(date +%s%N)
	if vt_until 30 sh -c "! kill -0 $lats 2>/dev/null" && wait "$lats"; then
		echo "ok   depth-4 ib_write_lat's server done with M1, M2 and M4 stopped ($(( ($(date +%s%N) - t0) / 1000000 )) ms after the stop)"
	else
		echo "FAIL: depth-4 ib_write_lat did not complete with the middles stopped"
		sed 's/^/  server| /' "$tmp/lats"; fail=1; kill "$lats" 2>/dev/null
	fi
	kill -CONT "$M1_PID" "$M2_PID" "$M4_PID"
else
	echo "FAIL: the depth-4 ib_write_lat never held its descriptor"; fail=1
fi
timeout -k 2 "$(vt_secs 20)" tail --pid="$latc" -f /dev/null
if wait "$latc" && grep -q t_typical "$tmp/latc"; then
	echo "ok   depth-4 ib_write_lat client (#bytes #iters t_min t_max t_typical ...): $(grep -A1 't_typical' "$tmp/latc" | tail -1 | xargs)"
else
	echo "FAIL: the depth-4 ib_write_lat client"; sed 's/^/  client| /' "$tmp/latc"; fail=1
fi
# M4 goes before the SIGKILL below (the guests there are M2's, and M2's subtree is checked
# for DEVICE_FATAL whole).
vd_term "$M4_PID" || { echo "FAIL: M4 did not exit on SIGTERM (killed)"; fail=1; }
m4=$M4_PID M4_PID=
m2_lost() { ! m2 guest show 2>/dev/null | grep -q " pid $1 "; }
vt_until 10 m2_lost "$m4" || { echo "FAIL: M2 still lists M4 (pid $m4) as its guest"; fail=1; }

# SIGKILL of M1 while depth-3 guests work: ibv_rc_pingpong busy on vn, a guest waiting
# with a QP on vs (shares of M2's attachment: a guest that just exited may still hold its
# objects a moment, which a child as wide as the attachment would meet: EDQUOT).
port2=$PT_PORT; PT_PORT=$((PT_PORT + 1))
timeout -k 2 "$(vt_secs 60)" ibv_rc_pingpong -d "$VBUS_RXE" -g "$VBUS_GID_INDEX" -p "$port2" -n 1000000 >"$tmp/pps" 2>&1 &
pps=$!
pt_wait_listen "$port2" "$pps" || { echo "FAIL: pingpong server did not listen"; exit 1; }
timeout -k 2 "$(vt_secs 60)" "${N3[@]}" stdbuf -oL ibv_rc_pingpong -d vn -g "$VBUS_GID_INDEX" -p "$port2" -n 1000000 "$VBUS_IP" >"$tmp/ppc" 2>&1 &
ppc=$!
# kernel: its child first; relay: it is connected to its peer (its QP's control calls
# follow at once)
if [ $KB = 1 ]; then vt_until 20 has_fd "$ppc"; else vt_wait_for "$tmp/ppc" 'remote address' 20 "$ppc"; fi
timeout -k 2 "$(vt_secs 60)" "$VD_BIN/vbus-run" --run-dir "$RUN2" --bus s -- "$pe" fatal >"$tmp/fatal" 2>&1 &
fpid=$!
vt_wait_for "$tmp/fatal" ready 20 $fpid || { echo "FAIL: the depth-3 guest did not get ready"; cat "$tmp/fatal"; exit 1; }
# a sibling of M1 (a depth-1 guest) runs the integrity program through the kill
IG_T=10 ig_pair "a depth-1 guest (M1's sibling) to native, through M1's SIGKILL" "$VBUS_RXE" \
	VD_RUN >"$tmp/sib" 2>&1 &
sib=$!
PT_PORT=$((PT_PORT + 1))
vt_wait_for "$tmp/igc" 'seed 0x' 30 "$sib" ||
	echo "note: the sibling's integrity run had not started its rounds before the kill"
sleep 2
during=$(res_counts)
kill -0 "$ppc" || { echo "FAIL: the depth-3 ibv_rc_pingpong ended before the kill"; cat "$tmp/ppc"; fail=1; }
t0=$(date +%s%N)
kill -KILL "$M1_PID"
wait "$M1_PID" 2>/dev/null
M1_PID=
vt_until 10 grep -q "ok   IBV_EVENT_DEVICE_FATAL" "$tmp/fatal"
ns=$(sed -n 's/^ok   IBV_EVENT_DEVICE_FATAL at \([0-9]*\) ns$/\1/p' "$tmp/fatal")
ms=$(( (${ns:-$(date +%s%N)} - t0) / 1000000 ))	# when the guest got it
lim=$(awk -v s="${VBUS_TIME_SCALE:-$VT_FLOOR}" 'BEGIN{printf "%d", 1000 * s}')	# 1 s, scaled
if grep -q "ok   IBV_EVENT_DEVICE_FATAL" "$tmp/fatal" && [ "$ms" -le "$lim" ]; then
	echo "ok   M1 SIGKILLed: its depth-3 guest got DEVICE_FATAL in $ms ms (limit $lim ms)"
else
	echo "FAIL: DEVICE_FATAL after M1's SIGKILL: $ms ms (limit $lim ms)"; sed 's/^/  | /' "$tmp/fatal"; fail=1
fi
wait "$fpid" || { echo "FAIL: the depth-3 guest's checks after DEVICE_FATAL"; sed 's/^/  | /' "$tmp/fatal"; fail=1; }
vt_until 1 sh -c "! kill -0 $ppc 2>/dev/null" || kill "$ppc"
if wait "$ppc"; then
	echo "FAIL: the depth-3 ibv_rc_pingpong finished through a dead subtree"; fail=1
else
	echo "ok   the depth-3 ibv_rc_pingpong got nothing more after the kill"
fi
kill "$pps" 2>/dev/null; wait "$pps" 2>/dev/null
wait "$sib"
cat "$tmp/sib"
grep -q '^ok   integrity' "$tmp/sib" || fail=1
if vt_until 10 sh -c "[ \"\$(for k in qp cq mr pd; do rdma res show \$k 2>/dev/null | grep -c .; done | xargs)\" = '$base' ]"; then
	echo "ok   rdma res back to its baseline (qp cq mr pd: $base; during: $during)"
else
	echo "FAIL: rdma res $(res_counts), baseline $base"; fail=1
fi

# dev del under a passthrough subtree, in the middle and at depth 0: M3 (depth 1) hands
# its guest (depth 2) a child of its own attachment; that guest makes two more levels
# (tests/guest/revoke). `dev del` in M3 revokes that child by its tag on M3's descriptor;
# `dev del` at depth 0 revokes M3's own attachment, the subtree below it first.
"${VD_RUN[@]}" "$VD_BIN/vbusd" --run-dir "$RUN3" 2>"$tmp/m3.log" &
M3_PID=$!
vt_until 10 test -S "$RUN3/ctl.sock" || { echo "FAIL: M3 did not start"; cat "$tmp/m3.log"; exit 1; }
m3 bus add n allow all >/dev/null || { echo "FAIL: bus add in M3"; exit 1; }
revoke_under() { # WHERE COMMAND...: guest/revoke at depth 2 under M3, revoked by COMMAND
	local where=$1 rpid ns during t0
	shift
	m3 dev add vrdma0 class vrdma backing=vrdma0 mode=passthrough bus n >/dev/null ||
		{ echo "FAIL: dev add mode=passthrough in M3"; cat "$tmp/m3.log"; exit 1; }
	rm -f "$tmp/go"
	timeout -k 2 "$(vt_secs 120)" "$VD_BIN/vbus-run" --run-dir "$RUN3" --bus n -- "$rv" vrdma0 \
		"$tmp/go" >"$tmp/rv" 2>&1 &
	rpid=$!
	vt_wait_for "$tmp/rv" ready 20 $rpid ||
		{ echo "FAIL: the depth-2 guest/revoke did not get ready"; cat "$tmp/rv"; exit 1; }
	during=$(res_counts)
	t0=$(date +%s%N)
	"$@" || { echo "FAIL: $* ($where)"; fail=1; }
	vt_wait_for "$tmp/rv" '^revoked|^FAIL' 20 $rpid
	ns=$(sed -n 's/^ok   IBV_EVENT_DEVICE_FATAL at \([0-9]*\) ns$/\1/p' "$tmp/rv")
	if [ -n "$ns" ] && [ $(( (ns - t0) / 1000000 )) -le "$lim" ] && grep -q '^revoked' "$tmp/rv"; then
		echo "ok   dev del $where: the depth-2 guest got DEVICE_FATAL in $(( (ns - t0) / 1000000 )) ms (limit $lim ms), -EIO on its three levels"
	else
		echo "FAIL: dev del $where: the depth-2 guest (limit $lim ms)"; sed 's/^/  | /' "$tmp/rv"; fail=1
	fi
	if vt_until 10 sh -c "[ \"\$(for k in qp cq mr pd; do rdma res show \$k 2>/dev/null | grep -c .; done | xargs)\" = '$base' ]" &&
	   kill -0 $rpid 2>/dev/null; then
		echo "ok   dev del $where: rdma res back to its baseline with the guest's descriptors open (before: $during)"
	else
		echo "FAIL: dev del $where: rdma res $(res_counts), baseline $base"; fail=1
	fi
	touch "$tmp/go"
	wait $rpid || { echo "FAIL: the depth-2 guest/revoke exited $?"; sed 's/^/  | /' "$tmp/rv"; fail=1; }
	if kill -0 "$M3_PID" 2>/dev/null && m3 dev show >/dev/null; then
		echo "ok   dev del $where: M3 lives on"
	else
		echo "FAIL: M3 after dev del $where"; cat "$tmp/m3.log"; fail=1
	fi
}
# relay: guest/port-events fatal (a PD, a CQ and a QP) at depth 2 under M3 (guest/revoke
# drives the module's children); it checks its failing verbs after DEVICE_FATAL and exits.
revoke_under_relay() { # WHERE COMMAND...
	local where=$1 rpid during t0 ms ns
	shift
	m3 dev add vrdma0 class vrdma backing=vrdma0 mode=passthrough bus n >/dev/null ||
		{ echo "FAIL: dev add mode=passthrough in M3"; cat "$tmp/m3.log"; exit 1; }
	timeout -k 2 "$(vt_secs 120)" "$VD_BIN/vbus-run" --run-dir "$RUN3" --bus n -- "$pe" fatal \
		>"$tmp/rv" 2>&1 &
	rpid=$!
	vt_wait_for "$tmp/rv" ready 20 $rpid ||
		{ echo "FAIL: the depth-2 guest did not get ready"; cat "$tmp/rv"; exit 1; }
	during=$(res_counts)
	t0=$(date +%s%N)
	"$@" || { echo "FAIL: $* ($where)"; fail=1; }
	vt_until 20 grep -q "ok   IBV_EVENT_DEVICE_FATAL" "$tmp/rv"
	ns=$(sed -n 's/^ok   IBV_EVENT_DEVICE_FATAL at \([0-9]*\) ns$/\1/p' "$tmp/rv")
	ms=$(( (${ns:-$(date +%s%N)} - t0) / 1000000 ))
	if grep -q "ok   IBV_EVENT_DEVICE_FATAL" "$tmp/rv" && [ "$ms" -le "$lim" ]; then
		echo "ok   dev del $where: the depth-2 guest got DEVICE_FATAL in $ms ms (limit $lim ms)"
	else
		echo "FAIL: dev del $where: the depth-2 guest, $ms ms (limit $lim ms)"; sed 's/^/  | /' "$tmp/rv"; fail=1
	fi
	wait $rpid || { echo "FAIL: the depth-2 guest's checks after DEVICE_FATAL"; sed 's/^/  | /' "$tmp/rv"; fail=1; }
	if vt_until 10 sh -c "[ \"\$(for k in qp cq mr pd; do rdma res show \$k 2>/dev/null | grep -c .; done | xargs)\" = '$base' ]"; then
		echo "ok   dev del $where: rdma res back to its baseline (before: $during)"
	else
		echo "FAIL: dev del $where: rdma res $(res_counts), baseline $base"; fail=1
	fi
	if kill -0 "$M3_PID" 2>/dev/null && m3 dev show >/dev/null; then
		echo "ok   dev del $where: M3 lives on"
	else
		echo "FAIL: M3 after dev del $where"; cat "$tmp/m3.log"; fail=1
	fi
}
ru=$([ $KB = 1 ] && echo revoke_under || echo revoke_under_relay)
$ru "in the middle (M3)" m3 dev del vrdma0
$ru "at depth 0" vd_ctl dev del vrdma0
[ $fail = 0 ] || { echo "M1 log:"; tail -n 30 "$tmp/m1.log" | sed 's/^/  m1| /'
		   echo "M2 log:"; tail -n 30 "$tmp/m2.log" | sed 's/^/  m2| /'
		   echo "M3 log:"; tail -n 30 "$tmp/m3.log" | sed 's/^/  m3| /'; }
exit $fail
