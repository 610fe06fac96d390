#!/bin/bash
# Native perftest on rxe0: each tool runs server and client on the device, and its output
# parses into positive numbers (the parser bench/ uses).
# timeout: 300
top=${VBUS_TOP:-$(cd "$(dirname "$0")/../.." && pwd)}
. "$top/bench/lib/perftest.sh"
pt_need_device
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail=0
check() { # TOOL FIELD ARGS...
	local tool=$1 field=$2 v
	shift 2
	if ! pt_run "$tool" "$tmp/$tool" "$@"; then fail=1; return; fi
	if ! v=$(pt_figure "$tmp/$tool" "$field"); then
		echo "FAIL $tool: no positive $field in its output"; cat "$tmp/$tool"; fail=1; return
	fi
	echo "ok   $tool $*: $field=$v"
	pt_json "$tmp/$tool"
}
check ib_write_lat t_typical_us -n 1000
check ib_send_lat t_typical_us -n 1000
check ib_read_lat t_typical_us -n 1000
check ib_atomic_lat t_typical_us -n 1000
check ib_write_bw bw_avg_MBps -s 65536 -n 1000
exit $fail
