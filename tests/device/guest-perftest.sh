#!/bin/bash
# Unmodified Debian perftest in a process guest (vbus-run, no /dev/infiniband) through vbusd
# on soft-RoCE: guest client to native server, native client to guest server, and guest
# to guest, for RDMA WRITE, SEND, READ and atomic latency and WRITE/SEND/READ bandwidth, with the
# ibv_wr_* post API (perftest's default) and the old ibv_post_send API. Each run must
# finish on both sides and report positive figures.
# timeout: 600
top=${VBUS_TOP:-$(cd "$(dirname "$0")/../.." && pwd)}
. "$top/bench/lib/perftest.sh"
. "$top/tests/lib/vbusd.sh"
pt_need_device
vd_start t vrdma0 || exit 1
run=("$VD_BIN/vbus-run" --bus t --)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"; vd_stop' EXIT
fail=0

# The guest sees vrdma0 and not the real device, and has no /dev/infiniband.
out=$("${run[@]}" ibv_devices 2>&1)
if grep -qw vrdma0 <<<"$out" && ! grep -qw "$VBUS_RXE" <<<"$out"; then
	echo "ok   ibv_devices in the guest lists vrdma0 only"
else
	echo "FAIL ibv_devices in the guest: $out"; fail=1
fi
out=$("${run[@]}" ibv_devinfo -d vrdma0 2>&1)
if grep -q "state:.*PORT_ACTIVE" <<<"$out" && grep -q "link_layer:.*Ethernet" <<<"$out"; then
	echo "ok   ibv_devinfo in the guest: vrdma0 port 1 ACTIVE, Ethernet"
else
	echo "FAIL ibv_devinfo in the guest:"; sed 's/^/  | /' <<<"$out"; fail=1
fi
out=$("${run[@]}" sh -c 'ls -A /dev/infiniband' 2>&1)
[ -z "$out" ] && echo "ok   the guest's /dev/infiniband is empty" ||
	{ echo "FAIL the guest sees /dev/infiniband: $out"; fail=1; }

# check PATHNAME FIELD TOOL ARGS...: one perftest pair, one positive figure.
check() {
	local name=$1 field=$2 tool=$3 v
	shift 3
	if ! pt_run "$tool" "$tmp/o" "$@"; then
		echo "FAIL $name: $tool $*"; fail=1; return
	fi
	if ! v=$(pt_figure "$tmp/o" "$field"); then
		echo "FAIL $name: $tool $*: no positive $field"; sed 's/^/  | /' "$tmp/o"; fail=1; return
	fi
	echo "ok   $name $tool $*: $field=$v"
}

paths() { # TOOL FIELD ARGS...: guest->native, native->guest, guest->guest
	vd_as guest native; check guest-native "$2" "$1" "${@:3}"
	vd_as native guest; check native-guest "$2" "$1" "${@:3}"
	vd_as guest guest; check guest-guest "$2" "$1" "${@:3}"
}
paths ib_write_lat t_typical_us -n 500
paths ib_send_lat t_typical_us -n 500
paths ib_read_lat t_typical_us -n 500
paths ib_write_bw bw_avg_MBps -s 65536 -n 500
paths ib_send_bw bw_avg_MBps -s 4096 -n 500
paths ib_read_bw bw_avg_MBps -s 65536 -n 500
paths ib_atomic_lat t_typical_us -n 500
vd_as guest native
check guest-native t_typical_us ib_write_lat -n 500 --use_old_post_send
check guest-native bw_avg_MBps ib_write_bw -n 500 -q 4 --use_old_post_send
exit $fail
