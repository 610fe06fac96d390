#!/bin/bash
# UD in process guests through vbusd on soft-RoCE: ibv_ud_pingpong (address handles, UD
# sends with the GRH in receive buffers) with validation (-c) and in event mode (-e), and
# perftest's UD latency and bandwidth, guest to native, native to guest, guest to guest.
# timeout: 300
. "${VBUS_TOP:?}/tests/lib/pingpong.sh"
. "$VBUS_TOP/tests/lib/vbusd.sh"
pt_need_device
vd_start t vrdma0 || exit 1
run=("$VD_BIN/vbus-run" --bus t --)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"; vd_stop' EXIT
fail=0
as() { # guest|native guest|native: client, server (for pp_run and pt_run alike)
	PP_CLIENT_WRAP=() PP_CLIENT_DEV=$VBUS_RXE PP_SERVER_WRAP=() PP_SERVER_DEV=$VBUS_RXE
	[ "$1" = guest ] && PP_CLIENT_WRAP=("${run[@]}") PP_CLIENT_DEV=vrdma0
	[ "$2" = guest ] && PP_SERVER_WRAP=("${run[@]}") PP_SERVER_DEV=vrdma0
	PT_CLIENT_WRAP=("${PP_CLIENT_WRAP[@]}") PT_CLIENT_DEV=$PP_CLIENT_DEV
	PT_SERVER_WRAP=("${PP_SERVER_WRAP[@]}") PT_SERVER_DEV=$PP_SERVER_DEV
	return 0
}
for p in "guest native" "native guest" "guest guest"; do
	as $p
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
		   v=$(pt_field "$tmp/o" "$2") && [ -n "$v" ]; then
			echo "ok   $1 -c UD, client/server ${p/ /\/}: $2=$v"
		else
			echo "FAIL $1 -c UD, client/server ${p/ /\/}"; sed 's/^/  | /' "$tmp/log" "$tmp/o"; fail=1
		fi
	done
done
exit $fail
