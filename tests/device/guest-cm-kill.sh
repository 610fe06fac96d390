#!/bin/bash
# A guest killed mid-connection (docs/rdma-cm.md, Trust): its peer gets DISCONNECTED as
# natively, and no CM ID is left behind. rping client and server exchange pings without end
# (-C 0 is not rping's; a large count is); once the client has printed pings, it is killed
# with SIGKILL. Natively the kernel's rdma_cm sends the DREQ when the process's rdma_cm file
# closes; for a guest, vbusd destroys its real IDs when the guest's device instance closes.
# Either way the native server must print "server DISCONNECT EVENT..." and exit 0 (rping's
# status after a disconnect) within 30 s (scaled), and `rdma res show cm_id` must be back to
# its baseline. The native case runs first: if it does not behave so, the test fails there.
# timeout: 240
. "${VBUS_TOP:?}/tests/lib/vbusd.sh"
. "$VBUS_TOP/tests/lib/cm.sh"
cm_setup rping
port=$((7900 + RANDOM % 500))

# pings CLIENT-LOG: the client has printed at least 3 pings (connected, data flowing)
# shellcheck disable=SC2317	# called through vt_until
pings() { [ "$(grep -c '^ping data: rdma-ping-' "$1" 2>/dev/null)" -ge 3 ]; }

kill_client() { # native|guest: a native server, that client killed mid-connection
	local c=$1 spid cpid src
	port=$((port + 1))
	timeout -k 5 "$(vt_secs 90)" rping -s -a "$VBUS_IP" -p $port -C 100000000 \
		>"$CM_TMP/server" 2>&1 &
	spid=$!
	if ! vt_until 15 cm_listening $port; then
		echo "FAIL $c client killed: the native server did not listen"; CM_FAIL=1
		kill $spid 2>/dev/null; wait $spid; return
	fi
	# shellcheck disable=SC2046
	$(cm_wrap "$c") rping -c -a "$VBUS_IP" -p $port -C 100000000 -v >"$CM_TMP/client" 2>&1 &
	cpid=$!
	if ! vt_until 30 pings "$CM_TMP/client"; then
		echo "FAIL $c client killed: no pings before the kill"; cm_show_pair; CM_FAIL=1
		kill -KILL $cpid $spid 2>/dev/null; wait $cpid $spid 2>/dev/null; return
	fi
	kill -KILL $cpid
	wait $cpid 2>/dev/null
	wait $spid
	src=$?
	if [ $src = 0 ] && grep -q "server DISCONNECT EVENT" "$CM_TMP/server"; then
		echo "ok   $c client killed mid-connection: the native server got DISCONNECTED, exit 0"
	else
		echo "FAIL $c client killed mid-connection: server exit $src (124: still waiting)"
		sed 's/^/  server| /' "$CM_TMP/server" | tail -n 20; CM_FAIL=1
	fi
}

kill_client native
kill_client guest
cm_ids_back "$CM_BASE"
cm_end
