#!/bin/bash
# UD through rdma_cm in guests (docs/rdma-cm.md): rdma-core's udaddy, unmodified
# (RDMA_PS_UDP: SIDR REQ and REP, the address vector, QPN and Q_Key of ESTABLISHED, a UD QP
# that rdma_create_qp takes to RTS, then 10 datagrams each way; the server answers each
# through an AH made from the work completion). Guest client to a native server, native to
# guest, guest to guest: both sides must exit 0 after "data transfers complete".
# udaddy listens on its fixed port 7174, so the pairs run one after the other.
# timeout: 240
. "${VBUS_TOP:?}/tests/lib/vbusd.sh"
. "$VBUS_TOP/tests/lib/cm.sh"
cm_setup udaddy

for p in "guest native" "native guest" "guest guest"; do
	# shellcheck disable=SC2086
	set -- $p
	cm_pair "$1" "$2" "cm_bound 7174" udaddy -b "$VBUS_IP" -C 10 -- \
		udaddy -s "$VBUS_IP" -C 10 || continue
	if [ "$CM_CRC" = 0 ] && [ "$CM_SRC" = 0 ] &&
	   grep -qx "data transfers complete" "$CM_TMP/client" &&
	   grep -qx "data transfers complete" "$CM_TMP/server"; then
		echo "ok   udaddy -C 10 client/server $1/$2: 10 datagrams each way, both exit 0"
	else
		echo "FAIL udaddy client/server $1/$2: exit client $CM_CRC server $CM_SRC"
		cm_show_pair; CM_FAIL=1
	fi
	vt_until 10 eval '! cm_bound 7174' || true
done

cm_ids_back "$CM_BASE"
cm_end
