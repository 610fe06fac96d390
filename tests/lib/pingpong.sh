# tests/lib/pingpong.sh: run an rdma-core ibv_*_pingpong example as server and client on the
# soft-RoCE device and check that both sides moved the expected bytes.
#   pp_run TOOL ITERS [ARGS...]   returns 0 when both sides report ITERS iterations
# PP_SERVER_WRAP / PP_CLIENT_WRAP (arrays) prefix a side (vbus-run ... --), and
# PP_SERVER_DEV / PP_CLIENT_DEV name its device (default $VBUS_RXE). Each side has 60 s
# (times VBUS_TIME_SCALE: tests/lib/time.sh, which perftest.sh sources).
. "${VBUS_TOP:?}/bench/lib/perftest.sh"

pp_run() {
	local tool=$1 iters=$2 port=$PT_PORT spid src crc tmp
	local sdev=${PP_SERVER_DEV:-$VBUS_RXE} cdev=${PP_CLIENT_DEV:-$VBUS_RXE}
	shift 2
	PT_PORT=$((PT_PORT + 1))
	tmp=$(mktemp -d)
	timeout -k 5 "$(vt_secs 60)" "${PP_SERVER_WRAP[@]}" "$tool" -d "$sdev" -g "$VBUS_GID_INDEX" -p "$port" -n "$iters" "$@" >"$tmp/server" 2>&1 &
	spid=$!
	pt_wait_listen "$port" "$spid" || { echo "$tool server did not listen"; cat "$tmp/server"; kill "$spid" 2>/dev/null; return 1; }
	timeout -k 5 "$(vt_secs 60)" "${PP_CLIENT_WRAP[@]}" "$tool" -d "$cdev" -g "$VBUS_GID_INDEX" -p "$port" -n "$iters" "$@" "$VBUS_IP" >"$tmp/client" 2>&1
	crc=$?
	wait "$spid"
	src=$?
	# (bash reads and checks the outputs: every program run costs about 0.1 s in the TCG VM)
	local side l n=0
	for side in client server; do
		while IFS= read -r l || [ -n "$l" ]; do
			echo "$side| $l"
			# "8192000 bytes in 1.02 seconds = 64.25 Mbit/sec" then "1000 iters in 1.02 seconds = ..."
			[[ $l == "$iters iters in"* ]] && n=$((n + 1))
		done <"$tmp/$side"
	done
	rm -rf "$tmp"
	[ $crc = 0 ] && [ $src = 0 ] || { echo "FAIL: $tool exit client $crc server $src"; return 1; }
	[ $n = 2 ] || { echo "FAIL: $tool did not report $iters iterations on both sides"; return 1; }
}
