#!/bin/bash
# ibv_rc_pingpong (rdma-core's example, unmodified) with a process guest on either side
# and on both, through vbusd on soft-RoCE: polling, with received-buffer validation (-c),
# and in event mode (-e: completion channels, ibv_req_notify_cq, ibv_get_cq_event).
# timeout: 300
. "${VBUS_TOP:?}/tests/lib/pingpong.sh"
. "$VBUS_TOP/tests/lib/vbusd.sh"
pt_need_device
vd_start t vrdma0 || exit 1
fail=0
for mode in "-c" "-c -e"; do
	for p in "guest native" "native guest" "guest guest"; do
		vd_as $p
		# shellcheck disable=SC2086
		if pp_run ibv_rc_pingpong 300 $mode >/tmp/pp.$$ 2>&1; then
			echo "ok   ibv_rc_pingpong $mode, client/server ${p/ /\/}: $(grep -m1 'iters in' /tmp/pp.$$)"
		else
			echo "FAIL ibv_rc_pingpong $mode, client/server ${p/ /\/}"; sed 's/^/  | /' /tmp/pp.$$; fail=1
		fi
	done
done
rm -f /tmp/pp.$$
exit $fail
