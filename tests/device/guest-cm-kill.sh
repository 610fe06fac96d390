#!/bin/bash
# A guest killed mid-connection (docs/rdma-cm.md, Trust): its peer gets DISCONNECTED as
# natively, and no CM ID is left behind. rping client and server exchange pings without end
# (-C 0 is not rping's; a large count is); once the client has printed pings, one side is
# killed with SIGKILL. Natively the kernel's rdma_cm sends the DREQ when the process's
# rdma_cm file closes; for a guest, vbusd destroys its real IDs when the guest's device
# instance closes.
# - A killed client (native, then guest): the native server must print "server DISCONNECT
#   EVENT..." and exit 0 or 255: rping's server exits 0 when the disconnect finds it between
#   two pings and 255 when it lands inside one ("wait for RDMA_READ_ADV state 10" and the
#   like); which one is a race of rping's, seen natively too (CI, once: native 255).
# - A killed server (native first, the control, then guest): the native client must print
#   "client DISCONNECT EVENT..." and exit, with the guest's server as with the native one.
# The survivor must end within 90 s (scaled) of its start, and `rdma res show cm_id` must be
# back to its baseline. If a native case does not behave so, the test fails there.
# timeout: 240
. "${VBUS_TOP:?}/tests/lib/vbusd.sh"
. "$VBUS_TOP/tests/lib/cm.sh"
cm_setup rping
port=$((7900 + RANDOM % 500))

# pings CLIENT-LOG: the client has printed at least 3 pings (connected, data flowing)
# shellcheck disable=SC2317	# called through vt_until
pings() { [ "$(grep -c '^ping data: rdma-ping-' "$1" 2>/dev/null)" -ge 3 ]; }

# kill_side client|server native|guest: a pair of rping without end, the other side native;
# once the client has printed pings, SIDE (run as KIND) gets SIGKILL. The survivor must get
# DISCONNECTED ("<survivor> DISCONNECT EVENT...") and exit within 30 s (scaled); its exit
# status is set in KILL_RC (rping's server exits 0 then; the native control tells what the
# client does).
kill_side() {
	local side=$1 k=$2 spid cpid rc survivor sw=native cw=native tmo stmo ctmo
	port=$((port + 1))
	if [ "$side" = client ]; then cw=$k; survivor=server; else sw=$k; survivor=client; fi
	KILL_RC=
	# The survivor runs under timeout; the side to be killed without (vbus-run execs rping:
	# its pid is rping's).
	tmo=(timeout -k 5 "$(vt_secs 90)")
	[ "$side" = server ] && stmo=() || stmo=("${tmo[@]}")
	[ "$side" = client ] && ctmo=() || ctmo=("${tmo[@]}")
	# shellcheck disable=SC2046
	"${stmo[@]}" $(cm_wrap "$sw") rping -s -a "$VBUS_IP" -p $port -C 100000000 \
		>"$CM_TMP/server" 2>&1 &
	spid=$!
	if ! vt_until 15 cm_listening $port; then
		echo "FAIL $k $side killed: the server did not listen"; CM_FAIL=1
		kill $spid 2>/dev/null; wait $spid; return 1
	fi
	# shellcheck disable=SC2046
	"${ctmo[@]}" $(cm_wrap "$cw") rping -c -a "$VBUS_IP" -p $port -C 100000000 -v \
		>"$CM_TMP/client" 2>&1 &
	cpid=$!
	if ! vt_until 30 pings "$CM_TMP/client"; then
		echo "FAIL $k $side killed: no pings before the kill"; cm_show_pair; CM_FAIL=1
		kill -KILL $cpid $spid 2>/dev/null; wait $cpid $spid 2>/dev/null; return 1
	fi
	if [ "$side" = client ]; then
		kill -KILL $cpid; wait $cpid 2>/dev/null; wait $spid; rc=$?
	else
		kill -KILL $spid; wait $spid 2>/dev/null; wait $cpid; rc=$?
	fi
	if [ $rc = 124 ] || [ $rc = 137 ] ||
	   ! grep -q "$survivor DISCONNECT EVENT" "$CM_TMP/$survivor"; then
		echo "FAIL $k $side killed mid-connection: the native $survivor exit $rc (124: still" \
			"waiting), DISCONNECTED $(grep -c "$survivor DISCONNECT EVENT" "$CM_TMP/$survivor")"
		sed "s/^/  $survivor| /" "$CM_TMP/$survivor" | grep -v 'ping data' | tail -n 20
		CM_FAIL=1; return 1
	fi
	KILL_RC=$rc
}

# A killed client: the native server exits 0 or 255 (above), after DISCONNECTED.
for k in native guest; do
	kill_side client $k || continue
	if [ "$KILL_RC" = 0 ] || [ "$KILL_RC" = 255 ]; then
		echo "ok   $k client killed mid-connection: the native server got DISCONNECTED, exit $KILL_RC" \
			"$([ "$KILL_RC" = 255 ] && grep -m1 'wait for\|error' "$CM_TMP/server")"
	else
		echo "FAIL $k client killed mid-connection: the native server exit $KILL_RC"
		sed 's/^/  server| /' "$CM_TMP/server" | grep -v 'ping data' | tail -n 20; CM_FAIL=1
	fi
done

# A killed server: the native client must end as it does with a native server killed.
if kill_side server native; then
	nrc=$KILL_RC
	echo "ok   native server killed mid-connection: the native client got DISCONNECTED, exit $nrc"
	if kill_side server guest; then
		if [ "$KILL_RC" = "$nrc" ]; then
			echo "ok   guest server killed mid-connection: the native client got DISCONNECTED," \
				"exit $KILL_RC as natively"
		else
			echo "FAIL guest server killed mid-connection: the native client exit $KILL_RC," \
				"natively $nrc"; sed 's/^/  client| /' "$CM_TMP/client" | grep -v 'ping data'
			CM_FAIL=1
		fi
	fi
fi
cm_ids_back "$CM_BASE"
cm_end
