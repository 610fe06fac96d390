#!/bin/bash
# rdma_cm in guests (docs/rdma-cm.md): rdma-core's rping, unmodified (librdmacm: event
# channel, resolve address and route, listen, connect, accept, rdma_create_qp, disconnect),
# with 100 pings (VBUS_RPING_PINGS) whose data both sides validate (-V) and print (-v):
# guest client to a native server, native to guest, guest to guest. Then the failures a
# native program gets:
# - a guest binding an address its bus does not allow (127.0.0.1, which natively binds)
#   gets what native rping gets for an address the host does not have (192.0.2.1):
#   rdma_bind_addr fails with EADDRNOTAVAIL;
# - a client to a port nobody listens on is REJECTED, guest and native alike.
# timeout: 240
. "${VBUS_TOP:?}/tests/lib/vbusd.sh"
. "$VBUS_TOP/tests/lib/cm.sh"
cm_setup rping
port=$((7100 + RANDOM % 500))
PINGS=${VBUS_RPING_PINGS:-100}
tmp=$CM_TMP

# vbusctl shows a guest server's listener (CM_ON_READY of a pair with a guest server)
# shellcheck disable=SC2317	# called through CM_ON_READY
shows_listener() {
	vd_ctl res show cm_id | grep -q "cm_id .* listening src $VBUS_IP:$port " && return
	echo "FAIL vbusctl res show cm_id does not show the guest's listener on $VBUS_IP:$port:"
	vd_ctl res show cm_id | sed 's/^/  | /'; CM_FAIL=1
}

rping_pair() { # CLIENT SERVER
	local c=$1 s=$2 n
	port=$((port + 1))
	CM_ON_READY=
	[ "$s" = guest ] && CM_ON_READY=shows_listener
	cm_pair "$c" "$s" "cm_listening $port" rping -s -a "$VBUS_IP" -p $port -C $PINGS -v -V -- \
		rping -c -a "$VBUS_IP" -p $port -C $PINGS -v -V || return
	n=$(grep -c "^ping data: rdma-ping-" "$tmp/client")
	if [ "$CM_CRC" = 0 ] && [ "$CM_SRC" = 0 ] && [ "$n" = $PINGS ] &&
	   [ "$(grep -c '^server ping data: rdma-ping-' "$tmp/server")" = $PINGS ]; then
		echo "ok   rping -C $PINGS -v -V, client/server $c/$s: $PINGS pings validated on both sides"
	else
		echo "FAIL rping client/server $c/$s: exit client $CM_CRC server $CM_SRC, $n pings"
		cm_show_pair; CM_FAIL=1
	fi
}

for p in "guest native" "native guest" "guest guest"; do
	# shellcheck disable=SC2086
	rping_pair $p
done

# A bind the bus does not allow: the native error of an address the host lacks.
port=$((port + 1))
timeout "$(vt_secs 20)" rping -s -a 192.0.2.1 -p $port -C 1 >"$tmp/native-bind" 2>&1
nrc=$?
timeout "$(vt_secs 20)" "${VD_RUN[@]}" rping -s -a 127.0.0.1 -p $port -C 1 >"$tmp/guest-bind" 2>&1
grc=$?
nmsg=$(grep -m1 "rdma_bind_addr" "$tmp/native-bind")
gmsg=$(grep -m1 "rdma_bind_addr" "$tmp/guest-bind")
if [ $nrc != 0 ] && [ $grc = $nrc ] && [ -n "$nmsg" ] && [ "$gmsg" = "$nmsg" ] &&
   echo "$gmsg" | grep -q "Cannot assign requested address"; then
	echo "ok   bind outside the bus: guest 127.0.0.1 and native 192.0.2.1 both: $gmsg (exit $grc)"
else
	echo "FAIL bind outside the bus: native exit $nrc '$nmsg', guest exit $grc '$gmsg'"
	sed 's/^/  native| /' "$tmp/native-bind"; sed 's/^/  guest| /' "$tmp/guest-bind"; CM_FAIL=1
fi

# Nobody listens: REJECTED, as natively.
port=$((port + 1))
timeout "$(vt_secs 30)" rping -c -a "$VBUS_IP" -p $port -C 1 >"$tmp/native-rej" 2>&1
nrc=$?
timeout "$(vt_secs 30)" "${VD_RUN[@]}" rping -c -a "$VBUS_IP" -p $port -C 1 >"$tmp/guest-rej" 2>&1
grc=$?
nmsg=$(grep -m1 "cma event" "$tmp/native-rej")
gmsg=$(grep -m1 "cma event" "$tmp/guest-rej")
if [ $nrc != 0 ] && [ $grc = $nrc ] && [ -n "$nmsg" ] && [ "$gmsg" = "$nmsg" ]; then
	echo "ok   connect to a port nobody listens on: guest and native both: $gmsg (exit $grc)"
else
	echo "FAIL connect to a closed port: native exit $nrc '$nmsg', guest exit $grc '$gmsg'"
	sed 's/^/  native| /' "$tmp/native-rej"; sed 's/^/  guest| /' "$tmp/guest-rej"; CM_FAIL=1
fi

# A guest killed while it listens: its CM ID goes with it.
port=$((port + 1))
"${VD_RUN[@]}" rping -s -a "$VBUS_IP" -p $port -C 1 >"$tmp/killed" 2>&1 &
kpid=$!
if vt_until 15 cm_listening $port; then
	kill -KILL $kpid; wait $kpid 2>/dev/null
	if vt_until 10 eval '! cm_listening $port'; then
		echo "ok   a guest killed while listening leaves no CM ID behind"
	else
		echo "FAIL the CM ID of a killed guest is still there:"; rdma res show cm_id | sed 's/^/  | /'; CM_FAIL=1
	fi
else
	echo "FAIL the guest server to be killed did not listen"; sed 's/^/  | /' "$tmp/killed"; CM_FAIL=1
	kill -KILL $kpid 2>/dev/null; wait $kpid 2>/dev/null
fi

# Every program has ended: the CM IDs are back to what they were before (rdma res show).
cm_ids_back "$CM_BASE"
cm_end
