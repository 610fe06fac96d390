#!/bin/bash
# Debian's qperf (0.4.11), an unmodified verbs program that is not perftest, natively and in
# process guests (vbus-run) on soft-RoCE.
#
# qperf has two ways to connect its RDMA tests. Its own (the default) exchanges LID, QPN and
# PSN over its TCP socket and builds the address vector from the LID alone, with no GRH
# (qperf's src/rdma.c, ib_prep); there is no option for a GID or GID index. On RoCE the
# kernel refuses an address without a GRH (EINVAL at RTR for RC/UC, at ibv_create_ah for
# UD), natively as well. The other way, -cm1, uses librdmacm, which works natively on rxe and,
# since rdma_cm in guests (docs/rdma-cm.md), from a guest client too.
#
# So: native to native with -cm1, the RC tests a guest runs must succeed with a positive
# figure (the others are reference figures); on every path (native and the three with a
# guest) qperf's own connection must fail exactly as natively (same message, with errno,
# exit status 1) and nothing else may go wrong (no hang, no crash, vbusd still running);
# -cm1 from a guest client must work for rc_lat, rc_bw and rc_rdma_write_lat.
# timeout: 300
# soak-timeout: 600
export VBUS_TOP=${VBUS_TOP:-$(cd "$(dirname "$0")/../.." && pwd)}
. "$VBUS_TOP/tests/lib/vbusd.sh"
command -v qperf >/dev/null ||
	{ echo "SKIP: qperf is not installed (Debian package qperf; scripts/deps installs it)"; exit 77; }
if [ -z "${VBUS_RXE:-}" ] || [ ! -d "/sys/class/infiniband/$VBUS_RXE" ]; then
	echo "SKIP: no soft-RoCE device (run under tests/vm/run)"; exit 77
fi
vd_start t vrdma0 || exit 1
tmp=$(mktemp -d)
srv=
# stop_server: the server and the children it forked per test: one that hangs must not hold
# the port for the next server (kill's error when they have gone is of no interest)
stop_server() {
	[ -n "$srv" ] || return 0
	pkill -KILL -P "$srv" qperf 2>/dev/null
	kill "$srv" 2>/dev/null && wait "$srv" 2>/dev/null
	srv=
}
# stuck WHAT: a client timed out waiting for the server: where the server and its children
# are, and vbusd's threads (a guest server waits on the module or vbusd), once per run
stuck_shown=0
stuck() {
	[ $stuck_shown = 0 ] && [ -n "$srv" ] || return 0
	stuck_shown=1
	echo "info $1: a client timed out; the server's processes and vbusd's threads:"
	{ vd_proc_stacks "$srv"; vd_stacks; } 2>&1 | sed 's/^/  | /'
}
trap 'stop_server; rm -rf "$tmp"; vd_stop' EXIT
fail=0
port=19765
T=1	# seconds per test
# qperf's own limit on each message exchange (default 5 s) is a time limit too: it scales
TO=$(vt_secs 5)

# shellcheck disable=SC2317	# called through vt_until
listening() { ss -ltn 2>/dev/null | grep -q ":$port "; }

# start_server native|guest: a qperf server on $port, waited for until it listens.
start_server() {
	local wrap=()
	stop_server
	[ "$1" = guest ] && wrap=("${VD_RUN[@]}")
	"${wrap[@]}" qperf -lp "$port" >"$tmp/server.log" 2>&1 &
	srv=$!
	vt_until 5 listening && return 0
	echo "FAIL the $1 qperf server did not listen on port $port"; sed 's/^/  | /' "$tmp/server.log"
	fail=1
	return 1
}

# client native|guest OUT ARGS...: one qperf client run, output in OUT; returns its status.
client() {
	local wrap=() out=$2
	[ "$1" = guest ] && wrap=("${VD_RUN[@]}")
	shift 2
	timeout -k 5 "$(vt_secs 60)" "${wrap[@]}" qperf "$VBUS_IP" -lp "$port" -t "$T" -to "$TO" "$@" >"$out" 2>&1
}

dev() { [ "$1" = guest ] && echo "$VD_DEV:1" || echo "$VBUS_RXE:1"; }

# figure OUT: qperf's first latency, bandwidth or message rate ("142 us", "63.3 MB/sec").
figure() {
	awk '$1 ~ /^(latency|bw|msg_rate)$/ && $2 == "=" && $3 + 0 > 0 { print $3, $4; exit }' "$1"
}

declare -A fig

# Native, -cm1: the RC tests that connect through librdmacm. The ones a guest runs below
# (guest_tests) are the control and must give a figure natively. The others are reference
# figures only, run under VBUS_FULL=1 (make soak): natively on rxe under TCG, qperf's
# rc_rdma_read_bw and rc_bi_bw now and then count nothing in their window ("bw = 0
# bytes/sec"), with no guest in the path; that is reported, not failed. Each native test
# gets a second try. They run once per suite (vd_controls, tests/lib/vbusd.sh).
start_server native || exit 1
cm_tests="rc_lat rc_bw rc_bi_bw rc_rdma_write_lat rc_rdma_write_bw rc_rdma_read_lat
	rc_rdma_read_bw rc_compare_swap_mr rc_fetch_add_mr"
guest_tests="rc_lat rc_bw rc_rdma_write_lat"
# (make test: only the controls of what a guest runs; the reference figures under VBUS_FULL=1)
[ "${VBUS_FULL:-0}" = 1 ] || cm_tests=$guest_tests
vd_controls || { echo "info the native -cm1 controls run in the kernel variant"; cm_tests=; }
for t in $cm_tests; do
	for _ in 1 2; do
		client native "$tmp/o" -cm1 "$t" && v=$(figure "$tmp/o") && [ -n "$v" ] && break
		v=
	done
	if [ -n "$v" ]; then
		fig[$t]=$v
		echo "ok   native -cm1 $t: $v"
	elif [[ " $guest_tests " == *" $t "* ]]; then
		echo "FAIL native -cm1 $t: no figure in 2 tries"; sed 's/^/  | /' "$tmp/o"; fail=1
	else
		echo "note native -cm1 $t: no figure in 2 tries (rxe natively, no vbus in the path)"
		sed 's/^/  | /' "$tmp/o"
	fi
done

# expect_refused PATH TEST MSG: qperf's own connection on PATH ("client server") fails with
# exit status 1 and MSG, as natively. Which side reports first is a race: the client prints
# MSG itself or as "server: MSG"; either way MSG carries errno's text.
expect_refused() {
	local c=${1% *} s=${1#* } t=$2 msg=$3 rc
	client "$c" "$tmp/o" -li "$(dev "$c")" -ri "$(dev "$s")" "$t"
	rc=$?
	# qperf's reports race: the server's can arrive empty ("server: ") and end the client
	# before it prints its own. Then exit status 1 with nothing else is the refusal too.
	if [ $rc = 1 ] && ! grep -v -e "^$t:\$" -e "$msg" -e '^server: *$' "$tmp/o" | grep -q .; then
		if grep -Eqx "(server: )?$msg" "$tmp/o"; then
			echo "ok   $c client, $s server, $t without -cm1: '$msg', as natively"
		else
			echo "ok   $c client, $s server, $t without -cm1: refused (exit 1; qperf's report came empty)"
		fi
		return 0
	fi
	echo "FAIL $c client, $s server, $t without -cm1: exit status $rc, expected 1 and '$msg'"
	sed 's/^/  | /' "$tmp/o"; fail=1
	grep -q 'timed out' "$tmp/o" && stuck "$c client, $s server, $t"
	return 1
}
rtr="failed to modify QP to RTR: Invalid argument"
ah="failed to create address handle: Invalid argument"
for p in "native native" "guest native"; do
	expect_refused "$p" rc_lat "$rtr"
	expect_refused "$p" uc_lat "$rtr"
	expect_refused "$p" ud_lat "$ah"
done

# -cm1 in a guest (rdma_cm in guests, docs/rdma-cm.md): guest client, native server, the
# tests issue 15 names; each must connect and give a figure.
declare -A gfig
for t in $guest_tests; do
	if client guest "$tmp/o" -cm1 "$t" && v=$(figure "$tmp/o") && [ -n "$v" ]; then
		gfig[$t]=$v
		echo "ok   guest -cm1 $t: $v"
	else
		echo "FAIL guest -cm1 $t: no figure"; sed 's/^/  | /' "$tmp/o"; fail=1
	fi
done
stop_server

start_server guest || exit 1
for p in "native guest" "guest guest"; do
	expect_refused "$p" rc_lat "$rtr"
	expect_refused "$p" ud_lat "$ah"
done
stop_server

# The guest's refusals came from the device (vbusd relayed them), and vbusd is still there.
if kill -0 "$VD_PID" 2>/dev/null; then
	echo "ok   vbusd still running after the refused connections"
else
	echo "FAIL vbusd is gone"; fail=1
fi

echo
echo "qperf figures ($T s each, one run; without -cm1 RoCE refuses qperf's GRH-less address, natively too)"
printf '  %-22s %-14s %s\n' test "native -cm1" "guest client -cm1"
for t in $cm_tests; do
	printf '  %-22s %-14s %s\n' "$t" "${fig[$t]:-$([ -n "$cm_tests" ] && echo FAILED || echo ctl)}" "${gfig[$t]:--}"
done
exit $fail
