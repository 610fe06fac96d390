#!/bin/bash
# vbus-softroce --hosts 2 --devices 2, installed as a user gets it: two VMs on two virtual
# links, each with its own rxe0 and rxe1 (one per link), and unmodified Debian programs
# between them, each server on host 0 and its client on host 1 (--host-cmd):
# ibv_rc_pingpong over the IPv4 and the IPv6 GID, ibv_ud_pingpong, ib_write_bw and
# rping -V on rxe0, ibv_rc_pingpong on rxe1 over the second link. Their logs are written
# into the working directory and checked here: iterations on both sides, rping's verified
# data, each device's variables, bytes on each link (the traffic crossed the wire: there
# is no other way between two VMs). Prints the wire figures (not judged). One boot of two
# TCG VMs.
# timeout: 400
VBUS_TOP=${VBUS_TOP:-$(cd "$(dirname "$0")/../.." && pwd)}
. "$VBUS_TOP/tests/lib/softroce-test.sh"
st_setup softroce-wire
cd "$ST_WORK" || exit 1
# wire.sh server|client: one program after another; a client retries until its server
# listens (VBUS_T_WAIT seconds at most).
cat >wire.sh <<'JOB'
role=$1 h=h$VBUS_HOST_INDEX wait=${VBUS_T_WAIT:-60}
echo "$role: $VBUS_IP ($VBUS_NETDEV) peer $VBUS_PEER_IP / $VBUS_PEER_IP6, GID $VBUS_GID_INDEX/$VBUS_GID_INDEX6, peer's $VBUS_PEER_GID_INDEX/$VBUS_PEER_GID_INDEX6, MTU $VBUS_IB_MTU"
env | grep '^VBUS_' | sort >env.$h
run() { # NAME CMD...: the server once, or the client until it connects
	local name=$1 end=$(( $(date +%s) + wait )) rc
	shift
	while :; do
		timeout "$wait" "$@" >"$name.$h" 2>&1; rc=$?
		[ "$role" = server ] || [ $rc = 0 ] || [ "$(date +%s)" -ge $end ] || { sleep 0.3; continue; }
		break
	done
	echo "exit $rc" >>"$name.$h"
	echo "$name: exit $rc"
}
peer=; [ "$role" = client ] && peer=$VBUS_PEER_IP
run rc4 ibv_rc_pingpong -d rxe0 -g "$VBUS_GID_INDEX" -n 500 $peer
run rc6 ibv_rc_pingpong -d rxe0 -g "$VBUS_GID_INDEX6" -n 500 $peer
run ud ibv_ud_pingpong -d rxe0 -g "$VBUS_GID_INDEX" -n 500 $peer
run rc4d1 ibv_rc_pingpong -d rxe1 -g "$VBUS_GID_INDEX_1" -n 500 ${peer:+$VBUS_PEER_IP_1}
run bw ib_write_bw -d rxe0 -x "$VBUS_GID_INDEX" -s 65536 -n 1000 -F $peer
if [ "$role" = server ]; then run rping rping -s -a "$VBUS_IP" -C 20 -S 4096 -V -v
else run rping rping -c -a "$VBUS_PEER_IP" -C 20 -S 4096 -V -v; fi
ip -s link show "$VBUS_NETDEV" >link.$h
ip -s link show "$VBUS_NETDEV_1" >link1.$h
JOB
t0=$(date +%s)
VBUS_T_WAIT=$(vt_secs 60) "$ST_CMD" --hosts 2 --devices 2 --mtu 4200 --timeout "$(vt_secs 300)" \
	--host-cmd 0 'bash wire.sh server' --host-cmd 1 'bash wire.sh client'; rc=$?
echo "     (two hosts, boot and five programs: $(( $(date +%s) - t0 )) s)"
st_expect 0 $rc "both hosts' commands"
ok() { echo "ok   $*"; }
bad() { echo "FAIL $*"; st_fail=1; }
for h in h0 h1; do
	for v in VBUS_HOSTS=2 "VBUS_HOST_INDEX=${h#h}" "VBUS_IP=10.99.0.$((${h#h} + 1))" \
		"VBUS_PEER_IP=10.99.0.$((2 - ${h#h}))" "VBUS_PEER_IP6=fd99::$((2 - ${h#h}))" VBUS_IB_MTU=4096; do
		grep -qx "$v" "env.$h" 2>/dev/null || bad "no $v on $h"
	done
	for v in VBUS_DEVICES=2 VBUS_RXE_1=rxe1 "VBUS_IP_1=10.99.1.$((${h#h} + 1))" \
		"VBUS_PEER_IP_1=10.99.1.$((2 - ${h#h}))" "VBUS_PEER_IP6_1=fd99:0:0:1::$((2 - ${h#h}))"; do
		grep -qx "$v" "env.$h" 2>/dev/null || bad "no $v on $h"
	done
	for v in VBUS_PEER_GID_INDEX6 VBUS_PEER_GID_INDEX_1 VBUS_PEER_GID_INDEX6_1; do
		grep -Eq "^$v=[0-9]+\$" "env.$h" || bad "no $v on $h"
	done
done
for t in rc4:ibv_rc_pingpong rc6:'ibv_rc_pingpong (IPv6 GID)' ud:ibv_ud_pingpong \
	rc4d1:'ibv_rc_pingpong on rxe1 (the second link)'; do
	n=${t%%:*}
	grep -q '^500 iters in' "$n.h0" && grep -q '^500 iters in' "$n.h1" &&
		grep -qx 'exit 0' "$n.h0" && grep -qx 'exit 0' "$n.h1" &&
		ok "${t#*:} between the hosts: $(grep -m1 'bytes in' "$n.h1")" ||
		{ bad "${t#*:} between the hosts:"; cat "$n.h0" "$n.h1" 2>/dev/null; }
done
bw=$(awk '$1 == 65536 && $2 == 1000 {print $4; exit}' bw.h1 2>/dev/null)
[ -n "$bw" ] && grep -qx 'exit 0' bw.h0 && grep -qx 'exit 0' bw.h1 &&
	ok "ib_write_bw between the hosts: 64 KiB x 1000, $bw MB/s average (wire)" ||
	{ bad "ib_write_bw between the hosts:"; cat bw.h0 bw.h1 2>/dev/null; }
pings=$(grep -c '^ping data: rdma-ping-' rping.h1 2>/dev/null)
[ "$pings" = 20 ] && grep -qx 'exit 0' rping.h0 && grep -qx 'exit 0' rping.h1 &&
	ok "rping -V between the hosts: 20 verified pings" ||
	{ bad "rping between the hosts ($pings pings):"; cat rping.h0 rping.h1 2>/dev/null; }
# Link 0 carried at least ib_write_bw's 64 MB: the RDMA traffic crossed the wire. Link 1
# carried rxe1's ping-pong (500 x 4 KiB each way), so at least 2 MB; and no ib_write_bw.
rx=$(awk '/RX:/{getline; print $1; exit}' link.h0 2>/dev/null)
[ "${rx:-0}" -gt 65536000 ] && ok "host 0's link 0 received $rx bytes" ||
	{ bad "host 0's link 0 received only ${rx:-no} bytes"; cat link.h0 2>/dev/null; }
rx1=$(awk '/RX:/{getline; print $1; exit}' link1.h0 2>/dev/null)
[ "${rx1:-0}" -gt 2048000 ] && [ "${rx1:-0}" -lt 65536000 ] && ok "host 0's link 1 received $rx1 bytes" ||
	{ bad "host 0's link 1 received ${rx1:-no} bytes (rxe1's 2 MB at least, not ib_write_bw's 64 MB)"; cat link1.h0 2>/dev/null; }
exit $st_fail
