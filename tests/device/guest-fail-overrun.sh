#!/bin/bash
# CQ overrun (tests/guest/failures.c overrun): 40 signaled RDMA WRITEs onto a CQ of 4 that
# nobody polls, 20 one at a time and 20 at once, natively on rxe0 and as a guest on vrdma0,
# with the same outcome: the context reports IBV_EVENT_CQ_ERR naming that CQ, the CQ keeps
# as many completions as natively (its cqe, 7 on rxe) and loses the rest, the QP stays RTS
# and a later write completes. Then the receive side: 16 SENDs, one at a time, into a
# receive CQ of 4: CQ_ERR, 7 kept, the receiving QP in ERR (rxe's responder does that; the
# relay must too: it fails if the relay leaves it RTS). Then send queues whose CQ of 4 is
# never polled: natively every signalled write posts (rxe frees a slot when it completes
# the WQE, the completion lost or not): a queue of 4, 16 writes one at a time, and a queue
# of 16, 16 writes at once then 32 one at a time; the same on the relay (since stop 38) and
# on the kernel backend (since stop 40: the guest library has the module move the real CQ
# when the queue looks full, and a completion past the CQ's room retires its WQE).
# vbusd survives.
# timeout: 120
. "${VBUS_TOP:?}/bench/lib/perftest.sh"
. "$VBUS_TOP/tests/lib/vbusd.sh"
. "$VBUS_TOP/tests/lib/failures.sh"
fl_need
vd_start t vrdma0 || exit 1
fl_both overrun; same=$?
kill -0 "$VD_PID" 2>/dev/null && vd_ctl guest show >/dev/null ||
	{ echo "FAIL: vbusd is not answering after the overrun"; exit 1; }
echo "ok   vbusd answers after the overrun"
exit $same
