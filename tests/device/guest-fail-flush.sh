#!/bin/bash
# QP to the error state flushes outstanding work (tests/guest/failures.c flush), natively on
# rxe0 and as a guest on vrdma0, with the same outcome: receives and sends (signaled and
# unsignaled) that could not make progress each complete once, with their wr_id and
# IBV_WC_WR_FLUSH_ERR; what is posted in ERR behaves as on rxe (a send is flushed, a receive
# is not: Linux 6.1 rxe flushes its receive queue only on the transition to ERR).
# timeout: 120
. "${VBUS_TOP:?}/bench/lib/perftest.sh"
. "$VBUS_TOP/tests/lib/vbusd.sh"
. "$VBUS_TOP/tests/lib/failures.sh"
fl_need
vd_start t vrdma0 || exit 1
fl_both flush
