#!/bin/bash
# Work requests that rxe's kernel path refuses at post time but a native user QP may take
# (tests/guest/failures.c refused), natively on rxe0 and as a guest on vrdma0, with the same
# outcome: what posting returns, each QP's completions in order, both QPs' states. A request
# the host refuses produces native's completion, in order, never silence.
# timeout: 180
. "${VBUS_TOP:?}/bench/lib/perftest.sh"
. "$VBUS_TOP/tests/lib/vbusd.sh"
. "$VBUS_TOP/tests/lib/failures.sh"
fl_need
vd_start t vrdma0 || exit 1
fl_both refused
