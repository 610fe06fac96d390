# tests/lib/vbusd.sh: start a vbusd for a device test, with one bus and one vrdma device
# backed by the soft-RoCE device of tests/vm/run, and stop it on exit.
#   vd_start [BUS [DEV]]   starts vbusd in a fresh run dir (VD_RUN_DIR), creates bus BUS
#                          (default t, open to all) with vrdma device DEV (default vrdma0)
#                          backed by $VBUS_RXE and GID index $VBUS_GID_INDEX; exports
#                          VBUS_RUN_DIR and VBUS_BUS for vbus-run; returns non-zero on failure
#   vd_stop                SIGTERM, wait (at most 20 s scaled, then its stacks and SIGKILL),
#                          and show vbusd's log if it did not exit 0
#   vd_ctl ARGS...         vbusctl against it (its --timeout: VBUS_CTL_TIMEOUT, vd_start sets
#                          it to 60 s scaled, so that a stuck vbusd fails a test, not hangs it)
#   vd_stacks              vbusd's threads: state, kernel and user stacks, last log lines
#   vd_proc_stacks PID     the same for any process and its children (no log)
#   vd_bounded SEC CMD...  CMD with a limit of SEC scaled seconds, as `timeout -s KILL`
#                          (exit 137 when cut), but before it is killed the stacks of
#                          CMD's processes and vbusd's and vbusd's view of its guests go
#                          to stderr: a hang leaves its evidence in the test's log
#   vd_cpu_ns              CPU time of all of vbusd's threads so far, in ns
#   vd_res_counts          "qp cq mr pd cm_id": the object counts of `rdma res show`
#   vd_res_is COUNTS       true when vd_res_counts says COUNTS (for vt_until)
#   vd_as CLIENT SERVER    each "guest" or "native": sets PT_CLIENT_WRAP/PT_CLIENT_DEV,
#                          PT_SERVER_WRAP/PT_SERVER_DEV (bench/lib/perftest.sh) and the
#                          PP_* ones (tests/lib/pingpong.sh): a guest side runs under
#                          vbus-run on the bus's vrdma device, a native one on $VBUS_RXE
# VD_BUS_ARGS: more arguments of `vbusctl bus add` (e.g. max-regions 1024); VD_DEV_ARGS: more
# attributes of the vrdma device (e.g. max-pinned=1073741824).
# VD_BACKEND: the vrdma device's backend= (kernel, relay or auto); unset: vbusd's default,
# auto (kernel when the module vbus_vrdma is loaded). tests/run sets it for guest tests, once
# per backend; with `kernel` and no module, vd_start skips the test (exit 77).
# VD_BIN is the build's bin directory (VBUS_BUILD/bin).
VD_BIN=${VBUS_BUILD:-${VBUS_TOP:?}/build/default}/bin
. "$(dirname "${BASH_SOURCE[0]}")/time.sh"	# time limits scale with the machine

vd_ctl() { "$VD_BIN/vbusctl" --run-dir "$VD_RUN_DIR" "$@"; }

# vd_stacks: where each of vbusd's threads is (state, wait channel, kernel stack, and the
# user stacks when gdb is there), for a test that finds vbusd stuck
vd_proc_stacks() {
	local pid=$1 t c
	echo "$(cat "/proc/$pid/comm" 2>/dev/null) (pid $pid) threads:"
	for t in /proc/"$pid"/task/*; do
		[ -d "$t" ] || continue
		echo "  ${t##*/} $(cat "$t/comm" 2>/dev/null) state $(awk '/^State:/ {print $2}' "$t/status" 2>/dev/null) wchan $(cat "$t/wchan" 2>/dev/null)"
		sed 's/^/    | /' "$t/stack" 2>/dev/null | head -n 8
	done
	command -v gdb >/dev/null &&
		timeout -k 2 "$(vt_secs 60)" gdb -batch -p "$pid" -ex 'thread apply all bt' 2>&1 |
		grep -E '^#|^Thread' | head -n 80 | sed 's/^/  gdb| /'
	for c in $(cat /proc/"$pid"/task/*/children 2>/dev/null); do vd_proc_stacks "$c"; done
}
vd_stacks() {
	vd_proc_stacks "$VD_PID"
	echo "vbusd's last log lines:"; tail -n 30 "$VD_RUN_DIR/vbusd.log" | sed 's/^/  | /'
}

vd_bounded() {
	local secs pid watch rc
	secs=$(vt_secs "$1")
	shift
	"$@" &
	pid=$!
	# The watcher: one sleep, then the evidence and the kill; killed itself when CMD ends.
	(
		sleep "$secs" & s=$!
		trap 'kill $s 2>/dev/null; exit 0' TERM
		wait $s
		{
			echo "vd_bounded: '$*' still running after $secs s: stacks, then SIGKILL"
			vd_proc_stacks "$pid"
			[ -z "${VD_PID:-}" ] || { vd_stacks; vd_ctl -j guest show; vd_ctl -j res show; }
		} 2>&1 | sed 's/^/  hang| /' >&2
		kids=$(pgrep -P "$pid")
		# shellcheck disable=SC2086
		kill -KILL "$pid" $kids 2>/dev/null
	) &
	watch=$!
	# Run in the background (a subshell of its own), killing it kills CMD, as with timeout.
	# shellcheck disable=SC2064
	[ "$BASHPID" = $$ ] || trap "kill -TERM $pid $watch 2>/dev/null" TERM
	wait "$pid"
	rc=$?
	while kill -0 "$pid" 2>/dev/null; do wait "$pid"; rc=$?; done	# a trap cut the wait
	kill "$watch" 2>/dev/null
	wait "$watch" 2>/dev/null
	return $rc
}

# vd_controls: whether this run of a device test runs its native controls too. A native run
# does not depend on the guest's backend, so make test runs the controls once: in the kernel
# variant when the module is loaded, else in the relay one. VBUS_FULL=1 runs them in
# every variant (make soak). A test that leaves its controls out says so.
vd_controls() {
	[ "${VBUS_FULL:-0}" = 1 ] || [ "${VD_BACKEND:-}" != relay ] || [ ! -e /dev/vbus-vrdma ]
}

vd_start() {
	local bus=${1:-t} dev=${2:-vrdma0}
	# The kernel backend needs the module (tests/vm/guest-main loads it): skip loudly.
	if [ "${VD_BACKEND:-}" = kernel ] && [ ! -e /dev/vbus-vrdma ]; then
		echo "SKIP: the kernel backend needs the vbus_vrdma module:" \
			"${VBUS_KMOD:-absent} ${VBUS_KMOD_REASON:-(no /dev/vbus-vrdma)}"
		exit 77
	fi
	VD_RUN_DIR=$(mktemp -d /tmp/vbus-test.XXXXXX)
	export VBUS_CTL_TIMEOUT=${VBUS_CTL_TIMEOUT:-$(vt_secs 60)}
	"$VD_BIN/vbusd" --run-dir "$VD_RUN_DIR" ${VD_ARGS:-} 2>"$VD_RUN_DIR/vbusd.log" &
	VD_PID=$!
	trap 'vd_stop' EXIT
	vt_until 5 test -S "$VD_RUN_DIR/ctl.sock" ||
		{ echo "vbusd did not start"; cat "$VD_RUN_DIR/vbusd.log"; return 1; }
	# shellcheck disable=SC2086
	vd_ctl bus add "$bus" allow all ${VD_BUS_ARGS:-} >/dev/null &&
	vd_ctl dev add "$dev" class vrdma backing="$VBUS_RXE" port=1 gid="$VBUS_GID_INDEX" \
		${VD_BACKEND:+backend=$VD_BACKEND} ${VD_DEV_ARGS:-} bus "$bus" >/dev/null ||
		{ echo "vbusctl could not set up bus $bus"; cat "$VD_RUN_DIR/vbusd.log"; return 1; }
	export VBUS_RUN_DIR=$VD_RUN_DIR VBUS_BUS=$bus
	VD_DEV=$dev
	VD_RUN=("$VD_BIN/vbus-run" --bus "$bus" --)
}

vd_as() {
	PT_CLIENT_WRAP=() PT_CLIENT_DEV=$VBUS_RXE PT_SERVER_WRAP=() PT_SERVER_DEV=$VBUS_RXE
	[ "$1" = guest ] && PT_CLIENT_WRAP=("${VD_RUN[@]}") PT_CLIENT_DEV=$VD_DEV
	[ "$2" = guest ] && PT_SERVER_WRAP=("${VD_RUN[@]}") PT_SERVER_DEV=$VD_DEV
	PP_CLIENT_WRAP=("${PT_CLIENT_WRAP[@]}") PP_CLIENT_DEV=$PT_CLIENT_DEV
	PP_SERVER_WRAP=("${PT_SERVER_WRAP[@]}") PP_SERVER_DEV=$PT_SERVER_DEV
	return 0
}

vd_cpu_ns() {
	local f t=0 v
	for f in /proc/"${VD_PID:-none}"/task/*/schedstat; do
		[ -r "$f" ] && read -r v _ <"$f" && t=$((t + v))
	done
	echo "$t"
}

vd_res_counts() {
	local k out=""
	for k in qp cq mr pd cm_id; do out+="$(rdma res show "$k" 2>/dev/null | grep -c .) "; done
	echo "${out% }"
}

vd_res_is() { [ "$(vd_res_counts)" = "$1" ]; }

# vd_rxe_active: $VBUS_RXE's port 1 ACTIVE with GID index $VBUS_GID_INDEX set (after its
# netdev went down and up).
vd_rxe_active() {
	[ "$(cat "/sys/class/infiniband/$VBUS_RXE/ports/1/state" 2>/dev/null)" = "4: ACTIVE" ] &&
		! grep -q '^0000:0000:0000:0000:0000:0000:0000:0000$' \
			"/sys/class/infiniband/$VBUS_RXE/ports/1/gids/$VBUS_GID_INDEX"
}

vd_gone() { # PID: it has exited (a zombie counts; read by bash: no program runs)
	local st=
	read -r _ _ st _ 2>/dev/null <"/proc/$1/stat" || true	# (gone: no file; set -e callers)
	[ -z "$st" ] || [ "$st" = Z ]
}
# vd_term PID [SECS [CMD...]]: SIGTERM to a vbusd (this shell's child), then wait for it at
# most SECS (20) scaled seconds; one still there gets CMD run (to show where it is stuck),
# then SIGKILL (false). Its exit status in VD_TERM_RC.
# (Every status is caught: bench scripts run under set -e.)
vd_term() {
	local ok=0 pid=$1 secs=${2:-20}
	shift $(( $# < 2 ? $# : 2 ))
	kill -TERM "$pid" 2>/dev/null || true
	vt_until "$secs" vd_gone "$pid" || { ok=1; [ $# = 0 ] || "$@" || true; kill -KILL "$pid" 2>/dev/null || true; }
	VD_TERM_RC=0
	wait "$pid" 2>/dev/null || VD_TERM_RC=$?
	return $ok
}
vd_stuck() { echo "vbusd did not exit within $(vt_secs 20) s of SIGTERM: killed"; vd_stacks; }
vd_stop() {
	local rc
	if [ -z "${VD_PID:-}" ]; then	# already gone (a test killed it): only the directory
		[ -n "${VD_RUN_DIR:-}" ] && rm -rf "$VD_RUN_DIR"
		return 0
	fi
	# vbusd ends its guests within 5 s of a SIGTERM (vbd_shutdown); one that does not is
	# shown where it is stuck and killed: a test or a benchmark never waits for it forever
	vd_term "$VD_PID" 20 vd_stuck || true
	rc=$VD_TERM_RC
	if [ $rc != 0 ]; then
		echo "vbusd exited with status $rc; its log:"
		tail -n 30 "$VD_RUN_DIR/vbusd.log" | sed 's/^/  vbusd| /'
	fi
	VD_PID=
	rm -rf "$VD_RUN_DIR"
	return $rc
}
