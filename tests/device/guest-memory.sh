#!/bin/bash
# tests/guest/memory.c under vbus-run through vbusd on soft-RoCE: memory placement, data of
# WRITE/SEND/READ byte for byte, refusals (a hugetlb page among them: two huge pages are
# reserved for it), and the synchronous posting errors.
# timeout: 120
. "${VBUS_TOP:?}/bench/lib/perftest.sh"
. "$VBUS_TOP/tests/lib/vbusd.sh"
pt_need_device
prog=${VBUS_BUILD:-$VBUS_TOP/build/default}/tests/guest/memory
[ -x "$prog" ] || { echo "FAIL: $prog not built"; exit 1; }
vd_start t vrdma0 || exit 1
# Two 2 MiB huge pages for memory.c's hugetlb buffer, the VM's setting restored afterwards.
hp0=$(cat /proc/sys/vm/nr_hugepages)
trap 'echo "$hp0" >/proc/sys/vm/nr_hugepages; vd_stop >/dev/null 2>&1' EXIT
if echo $((hp0 + 2)) >/proc/sys/vm/nr_hugepages 2>/dev/null &&
   [ "$(cat /proc/sys/vm/nr_hugepages)" -ge $((hp0 + 2)) ]; then
	export VBUS_WANT_HUGETLB=1
else
	echo "note: cannot reserve two huge pages; memory.c skips its hugetlb case"
fi
"$VD_BIN/vbus-run" --bus t -- "$prog" || exit 1
echo "--- again with the arena off (VBUS_ARENA=0): every buffer is moved at registration"
VBUS_ARENA=0 "$VD_BIN/vbus-run" --bus t -- "$prog"
