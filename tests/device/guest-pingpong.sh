#!/bin/bash
# ibv_rc_pingpong, ibv_uc_pingpong and ibv_srq_pingpong (rdma-core's examples, unmodified:
# the last one runs 16 RC QPs on one shared receive queue) with a process
# guest on either side and on both, through vbusd on soft-RoCE: polling, with received-
# buffer validation (-c), and in event mode (-e: completion channels, ibv_req_notify_cq,
# ibv_get_cq_event). (ibv_ud_pingpong is in guest-ud.)
# timeout: 300
. "${VBUS_TOP:?}/tests/lib/pingpong.sh"
. "$VBUS_TOP/tests/lib/vbusd.sh"
pt_need_device
vd_start t vrdma0 || exit 1
fail=0
for tool in ibv_rc_pingpong ibv_uc_pingpong ibv_srq_pingpong; do
	for mode in "-c" "-c -e"; do
		for p in "guest native" "native guest" "guest guest"; do
			vd_as $p
			# shellcheck disable=SC2086
			if pp_run $tool 300 $mode >/tmp/pp.$$ 2>&1; then
				echo "ok   $tool $mode, client/server ${p/ /\/}: $(grep -m1 'iters in' /tmp/pp.$$)"
			else
				echo "FAIL $tool $mode, client/server ${p/ /\/}"; sed 's/^/  | /' /tmp/pp.$$; fail=1
			fi
		done
	done
done
rm -f /tmp/pp.$$
exit $fail
