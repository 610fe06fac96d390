#!/bin/bash
# UD in process guests through vbusd on soft-RoCE: ibv_ud_pingpong (address handles, UD
# sends with the GRH in receive buffers) with validation (-c) and in event mode (-e), and
# perftest's UD latency and bandwidth, guest to native, native to guest, guest to guest.
# timeout: 300
. "${VBUS_TOP:?}/tests/lib/pingpong.sh"
. "$VBUS_TOP/tests/lib/vbusd.sh"
pt_need_device
vd_start t vrdma0 || exit 1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"; vd_stop' EXIT
fail=0
for p in "guest native" "native guest" "guest guest"; do
	vd_as $p
	for mode in "-c" "-c -e"; do
		# shellcheck disable=SC2086
		if pp_run ibv_ud_pingpong 300 -s 1024 $mode >"$tmp/pp" 2>&1; then
			echo "ok   ibv_ud_pingpong $mode, client/server ${p/ /\/}: $(grep -m1 'iters in' "$tmp/pp")"
		else
			echo "FAIL ibv_ud_pingpong $mode, client/server ${p/ /\/}"; sed 's/^/  | /' "$tmp/pp"; fail=1
		fi
	done
	for t in "ib_send_lat t_typical_us" "ib_send_bw bw_avg_MBps"; do
		set -- $t
		if pt_run "$1" "$tmp/o" -c UD -n 300 >"$tmp/log" 2>&1 &&
		   v=$(pt_figure "$tmp/o" "$2"); then
			echo "ok   $1 -c UD, client/server ${p/ /\/}: $2=$v"
		else
			echo "FAIL $1 -c UD, client/server ${p/ /\/}"; sed 's/^/  | /' "$tmp/log" "$tmp/o"; fail=1
		fi
	done
done
exit $fail
