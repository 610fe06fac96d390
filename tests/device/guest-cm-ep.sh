#!/bin/bash
# Synchronous rdma_cm IDs in guests (docs/rdma-cm.md): rdma-core's rdma_server and
# rdma_client, unmodified. They use rdma_getaddrinfo, rdma_create_ep (an ID without a
# channel: every call waits for its own event), rdma_listen, rdma_get_request (the QP made
# from the listener's attributes), rdma_accept / rdma_connect, the rdma_verbs.h helpers
# (rdma_reg_msgs, rdma_post_recv/send, rdma_get_send_comp/rdma_get_recv_comp, which wait
# on the ID's completion channels), rdma_disconnect and rdma_destroy_ep. Guest client to a
# native server, native to guest, guest to guest: both sides must end with status 0 after
# their message crossed ("end 0"). Then a client to a port nobody listens on must fail in
# rdma_connect exactly as natively (ECONNREFUSED from the synchronous REJECTED). And
# rdma-core's ucmatose (event channel, 2 connections on one listener, 10 messages each way
# on each) on the same three pairs, and with -m (rdma_migrate_id) guest-native and
# native-guest: both sides "test complete", status 0.
# timeout: 240
. "${VBUS_TOP:?}/tests/lib/vbusd.sh"
. "$VBUS_TOP/tests/lib/cm.sh"
cm_setup rdma_server
port=$((7700 + RANDOM % 500))

for p in "guest native" "native guest" "guest guest"; do
	# shellcheck disable=SC2086
	set -- $p
	port=$((port + 1))
	cm_pair "$1" "$2" "cm_listening $port" rdma_server -s "$VBUS_IP" -p $port -- \
		rdma_client -s "$VBUS_IP" -p $port || continue
	if [ "$CM_CRC" = 0 ] && [ "$CM_SRC" = 0 ] && grep -qx "rdma_client: end 0" "$CM_TMP/client" &&
	   grep -qx "rdma_server: end 0" "$CM_TMP/server"; then
		echo "ok   rdma_client/rdma_server $1/$2: both end 0"
	else
		echo "FAIL rdma_client/rdma_server $1/$2: exit client $CM_CRC server $CM_SRC"
		cm_show_pair; CM_FAIL=1
	fi
done

# ucmatose (rdmacm-utils): an asynchronous channel, several connections on one listener,
# ping-pong SENDs on each; both sides end with "test complete" and "return status 0". -m:
# both sides then move their IDs to a new channel (rdma_migrate_id) and disconnect there.
for p in "guest native" "native guest" "guest guest" "guest native -m" "native guest -m"; do
	# shellcheck disable=SC2086
	set -- $p
	port=$((port + 1))
	# shellcheck disable=SC2086
	cm_pair "$1" "$2" "cm_listening $port" ucmatose -b "$VBUS_IP" -p $port -c 2 -C 10 ${3:-} -- \
		ucmatose -s "$VBUS_IP" -p $port -c 2 -C 10 ${3:-} || continue
	if [ "$CM_CRC" = 0 ] && [ "$CM_SRC" = 0 ] &&
	   grep -qx "test complete" "$CM_TMP/client" && grep -qx "return status 0" "$CM_TMP/client" &&
	   grep -qx "test complete" "$CM_TMP/server" && grep -qx "return status 0" "$CM_TMP/server"; then
		echo "ok   ucmatose -c 2 -C 10 ${3:+$3 }$1/$2: test complete, status 0 on both sides"
	else
		echo "FAIL ucmatose -c 2 -C 10 ${3:+$3 }$1/$2: exit client $CM_CRC server $CM_SRC"
		cm_show_pair; CM_FAIL=1
	fi
done

# tests/guest/cm-srq: rdma_create_srq on an ID (the QP on it, every byte through it) and
# rdma_notify; native to native first, the control: each side's "outcome:" lines on every
# guest pair must be the native ones.
srq=${VBUS_BUILD:-$VBUS_TOP/build/default}/tests/guest/cm-srq
for p in "native native" "guest native" "native guest" "guest guest"; do
	# shellcheck disable=SC2086
	set -- $p
	port=$((port + 1))
	cm_pair "$1" "$2" "cm_listening $port" "$srq" -s "$VBUS_IP" $port -- \
		"$srq" -c "$VBUS_IP" $port || continue
	grep '^outcome:' "$CM_TMP/client" >"$CM_TMP/$1-$2.client"
	grep '^outcome:' "$CM_TMP/server" >"$CM_TMP/$1-$2.server"
	if [ "$CM_CRC" != 0 ] || [ "$CM_SRC" != 0 ]; then
		echo "FAIL cm-srq $1/$2: exit client $CM_CRC server $CM_SRC"; cm_show_pair; CM_FAIL=1
	elif [ "$1/$2" = native/native ]; then
		echo "ok   cm-srq native/native (the control):"
		sed 's/^/       /' "$CM_TMP/native-native.server" "$CM_TMP/native-native.client"
	elif cmp -s "$CM_TMP/$1-$2.client" "$CM_TMP/native-native.client" &&
	     cmp -s "$CM_TMP/$1-$2.server" "$CM_TMP/native-native.server"; then
		echo "ok   cm-srq $1/$2: every outcome as natively"
	else
		echo "FAIL cm-srq $1/$2: outcomes differ from the native ones"
		diff "$CM_TMP/native-native.server" "$CM_TMP/$1-$2.server" | sed 's/^/  server| /'
		diff "$CM_TMP/native-native.client" "$CM_TMP/$1-$2.client" | sed 's/^/  client| /'
		cm_show_pair; CM_FAIL=1
	fi
done

# Nobody listens: rdma_connect fails as natively (the synchronous ID's REJECTED).
port=$((port + 1))
timeout "$(vt_secs 30)" rdma_client -s "$VBUS_IP" -p $port >"$CM_TMP/native-rej" 2>&1
nrc=$?
timeout "$(vt_secs 30)" "${VD_RUN[@]}" rdma_client -s "$VBUS_IP" -p $port >"$CM_TMP/guest-rej" 2>&1
grc=$?
nmsg=$(grep -m1 "rdma_connect" "$CM_TMP/native-rej")
gmsg=$(grep -m1 "rdma_connect" "$CM_TMP/guest-rej")
if [ -n "$nmsg" ] && [ "$gmsg" = "$nmsg" ] && [ $grc = $nrc ]; then
	echo "ok   rdma_client to a port nobody listens on: guest and native both: $gmsg (exit $grc)"
else
	echo "FAIL rdma_client to a closed port: native exit $nrc '$nmsg', guest exit $grc '$gmsg'"
	sed 's/^/  native| /' "$CM_TMP/native-rej"; sed 's/^/  guest| /' "$CM_TMP/guest-rej"
	CM_FAIL=1
fi

cm_ids_back "$CM_BASE"
cm_end
