#!/bin/bash
# Shared receive queues and ibv_resize_cq (tests/guest/srq-cq.c): the same program and the
# same expectations natively on the soft-RoCE device and as a process guest on vrdma0.
# (ibv_srq_pingpong, unmodified, is in guest-pingpong.)
# timeout: 120
. "$VBUS_TOP/tests/lib/vbusd.sh"
prog=${VBUS_BUILD:-$VBUS_TOP/build/default}/tests/guest/srq-cq
[ -x "$prog" ] || { echo "no $prog (make)"; exit 1; }
fail=0
echo "--- native ($VBUS_RXE)"
timeout -k 5 60 "$prog" "$VBUS_RXE" "$VBUS_GID_INDEX" || fail=1
vd_start t vrdma0 || exit 1
echo "--- guest (vrdma0 through vbusd)"
timeout -k 5 60 "${VD_RUN[@]}" "$prog" vrdma0 "$VBUS_GID_INDEX" || fail=1
exit $fail
