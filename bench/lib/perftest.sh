# bench/lib/perftest.sh: run perftest server/client pairs on the soft-RoCE device that
# tests/vm/run set up (VBUS_RXE, VBUS_GID_INDEX, VBUS_IP). Sourced by device tests, the demo
# and the benchmarks.
#
#   pt_run TOOL OUT [ARGS...]   server and client of TOOL with ARGS; the client's output in
#                               OUT, the server's in OUT.server; returns non-zero if either
#                               side fails or runs past PT_TIMEOUT seconds (default 120
#                               times VBUS_TIME_SCALE, tests/lib/time.sh);
#                               a run whose clock calibration failed is repeated (below)
#   pt_json OUT                 the parsed result rows of OUT as JSON lines
#   pt_field OUT FIELD          one field of the first result row (e.g. t_typical_us)
# PT_SERVER_WRAP / PT_CLIENT_WRAP (arrays) prefix either side, e.g. (vbus-run --) for a guest.
# PT_DEV overrides the device name for both sides; PT_SERVER_DEV / PT_CLIENT_DEV for one.

PT_LIB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# Time limits scale with the machine (a slower one must not fail a run); figures do not.
. "$PT_LIB_DIR/../../tests/lib/time.sh"
: "${PT_TIMEOUT:=$(vt_secs 120)}"
: "${PT_PORT:=$((18515 + RANDOM % 1000))}"
PT_SERVER_WRAP=("${PT_SERVER_WRAP[@]}")
PT_CLIENT_WRAP=("${PT_CLIENT_WRAP[@]}")

pt_need_device() {
	if [ -z "${VBUS_RXE:-}" ] || [ -z "${VBUS_GID_INDEX:-}" ] || [ -z "${VBUS_IP:-}" ]; then
		echo "no soft-RoCE device: run this under tests/vm/run"
		exit 77
	fi
}

# pt_listening PORT [cm]: a TCP socket listens on PORT (/proc/net/tcp and tcp6, read by bash
# itself: no program runs, and each costs about 0.1 s in the TCG VM); with "cm", or when no
# TCP socket does, a CM ID may too (perftest -R exchanges its data over rdma_cm: no TCP
# socket; a CM listener shows in `rdma res` once bound to an address, so -R runs give
# --source_ip)
pt_tcp_listening() {
	local hex f sl addr rem st rest
	printf -v hex ':%04X' "$1"
	for f in /proc/net/tcp /proc/net/tcp6; do
		[ -r "$f" ] || continue
		while read -r sl addr rem st rest; do
			[ "$st" = 0A ] && [[ $addr == *"$hex" ]] && return 0
		done <"$f"
	done
	return 1
}
pt_listening() {
	pt_tcp_listening "$1" && return 0
	[ "${2:-}" = cm ] || [ ! -r /proc/net/tcp ] || return 1
	rdma res show cm_id 2>/dev/null | grep LISTEN | grep -Eq ":$1( |\$)"
}

# PORT PID [cm]: wait until PORT listens (or PID died), at most 15 s (scaled); "cm": the
# server listens with rdma_cm (perftest -R), not on a TCP socket
pt_wait_listen() {
	local end
	end=$(vt_deadline 15)
	until pt_listening "$1" "${3:-}"; do
		kill -0 "$2" 2>/dev/null && ! vt_past "$end" || return 1
		sleep 0.05
	done
}

# perftest calibrates its clock by sampling cycles against gettimeofday() and gives up when
# the fit is poor ("Correlation coefficient r^2: ... < 0.9"), then reports inf for every
# latency; a bandwidth test says "Can't produce a report" and exits 1 instead. Under TCG
# that happens now and then (vCPU threads get descheduled). Such a run says nothing about
# RDMA: it is run again, at most PT_CLOCK_RETRIES (2) more times.
pt_clock_failed() { # OUT: perftest's clock calibration failed on a side of the pair OUT
	pt_has 'Correlation coefficient r^2' "$1" "$1.server" ||
		pt_has "Can't produce a report" "$1" "$1.server"
}
pt_run() {
	local tries=$((1 + ${PT_CLOCK_RETRIES:-2})) rc
	while :; do
		pt_run_once "$@"
		rc=$?
		tries=$((tries - 1))
		if pt_clock_failed "$2"; then
			if [ $tries -gt 0 ]; then
				echo "pt_run: $1: perftest's clock calibration failed (r^2 < 0.9), running again" >&2
				continue
			fi
			# The traffic ran; only perftest's timing failed, every time: no figure
			# (pt_figure says "clock"), and no failure of the run.
			pt_has "Can't produce a report" "$2" "$2.server" && rc=0
		fi
		return $rc
	done
}

# pt_wait_pair CLIENT-PID SERVER-PID: wait for both sides of a pair; sets PT_CRC and
# PT_SRC to their exit statuses. A side that fails stops the other at once: it cannot
# finish alone. With perftest -R it would wait for the closing hand shake over rdma_cm
# forever, as it does when perftest's clock calibration fails on one side ("Can't produce
# a report", exit 1 before that hand shake): the hang docs/rdma-cm.md had left unexplained.
pt_wait_pair() {
	local first rc
	wait -n -p first "$1" "$2"
	rc=$?
	if [ "$first" = "$1" ]; then
		PT_CRC=$rc
		[ $rc = 0 ] || kill "$2" 2>/dev/null
		wait "$2"; PT_SRC=$?
	else
		PT_SRC=$rc
		[ $rc = 0 ] || kill "$1" 2>/dev/null
		wait "$1"; PT_CRC=$?
	fi
}

pt_run_once() {
	local tool=$1 out=$2 port spid src crc cm
	local sdev=${PT_SERVER_DEV:-${PT_DEV:-$VBUS_RXE}} cdev=${PT_CLIENT_DEV:-${PT_DEV:-$VBUS_RXE}}
	shift 2
	port=$PT_PORT
	PT_PORT=$((PT_PORT + 1))
	timeout -k 5 "$PT_TIMEOUT" "${PT_SERVER_WRAP[@]}" "$tool" -d "$sdev" -x "$VBUS_GID_INDEX" -p "$port" "$@" \
		>"$out.server" 2>&1 &
	spid=$!
	case " $* " in *" -R "*|*" --rdma_cm "*) cm=cm ;; *) cm= ;; esac
	if ! pt_wait_listen "$port" "$spid" $cm; then
		echo "pt_run: $tool server did not listen on port $port" >&2
		kill "$spid" 2>/dev/null; wait "$spid" 2>/dev/null
		sed 's/^/  server| /' "$out.server" >&2
		return 1
	fi
	timeout -k 5 "$PT_TIMEOUT" "${PT_CLIENT_WRAP[@]}" "$tool" -d "$cdev" -x "$VBUS_GID_INDEX" -p "$port" "$@" \
		"$VBUS_IP" >"$out" 2>&1 &
	pt_wait_pair $! "$spid"
	crc=$PT_CRC src=$PT_SRC
	if [ $crc != 0 ] || [ $src != 0 ]; then
		echo "pt_run: $tool $* failed (client exit $crc, server exit $src)" >&2
		sed 's/^/  client| /' "$out" | tail -n 15 >&2
		sed 's/^/  server| /' "$out.server" | tail -n 15 >&2
		return 1
	fi
	return 0
}

pt_json() { "$PT_LIB_DIR/perftest-parse" "$1"; }

# pt_has STRING FILE...: a line of a FILE holds STRING (read by bash: no program runs)
pt_has() {
	local s=$1 f l
	shift
	for f; do
		[ -r "$f" ] || continue
		while IFS= read -r l || [ -n "$l" ]; do [[ $l == *"$s"* ]] && return 0; done <"$f"
	done
	return 1
}

pt_field() {
	local j
	j=$(pt_json "$1") || return 0
	j=${j%%$'\n'*}
	[[ $j =~ \"$2\":([0-9.]*) ]] && echo "${BASH_REMATCH[1]}"
	return 0
}

# pt_figure OUT FIELD: for tests. Prints FIELD when it is positive. When perftest's clock
# calibration failed on every try (pt_run), the run itself finished on both sides but no
# time can be measured: prints "clock" and succeeds, so a slow or busy machine cannot fail a
# functional test. Otherwise fails.
pt_figure() {
	local v
	v=$(pt_field "$1" "$2")
	if [[ $v =~ ^[0-9]*\.?[0-9]*$ && $v =~ [1-9] ]]; then	# (positive)
		echo "$v"
	elif pt_clock_failed "$1"; then
		echo clock
	else
		return 1
	fi
}
