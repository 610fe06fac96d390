#!/bin/bash
# tests/guest/memory.c under vbus-run through vbusd on soft-RoCE: memory placement, data of
# WRITE/SEND/READ byte for byte, refusals, and the synchronous posting errors.
# timeout: 120
. "${VBUS_TOP:?}/bench/lib/perftest.sh"
. "$VBUS_TOP/tests/lib/vbusd.sh"
pt_need_device
prog=${VBUS_BUILD:-$VBUS_TOP/build/default}/tests/guest/memory
[ -x "$prog" ] || { echo "FAIL: $prog not built"; exit 1; }
vd_start t vrdma0 || exit 1
"$VD_BIN/vbus-run" --bus t -- "$prog" || exit 1
echo "--- again with the arena off (VBUS_ARENA=0): every buffer is moved at registration"
VBUS_ARENA=0 "$VD_BIN/vbus-run" --bus t -- "$prog"
