#!/bin/bash
# A guest that scribbles (tests/guest/scribble): random values over its own ring indices,
# work queue entries and completion ring while its traffic runs, then over its call channel
# (each followed by a call through it: vbusd closes the connection of a guest that broke
# its channel), and last, unless that happened already, it breaks the channel on purpose
# and must get DEVICE_FATAL, then EIO from a call;
# beside a guest whose every
# byte is checked (tests/guest/integrity, guest client to native server). vbusd and the
# module carry on and answer, the integrity guest passes, the scribbler is told through
# QP_FATAL, CQ_ERR or DEVICE_FATAL and does not hang, and after it exits every real object
# is released (rdma res show at its baseline). A new guest then runs. Two scribblers run one
# after the other with different seeds (VBUS_SCRIBBLE_SEED repeats the first), each for
# VBUS_SCRIBBLE_SECONDS (2, scaled; make soak: 30). Each scribbler first clears its receive
# ring's flags word and checks that a receive it posts is still taken (a hostile word must
# not stall the guest's own posts: the CI failure of stop 17).
# timeout: 300
# soak-timeout: 600
. "${VBUS_TOP:?}/bench/lib/perftest.sh"
. "$VBUS_TOP/tests/lib/vbusd.sh"
pt_need_device
bin=${VBUS_BUILD:-$VBUS_TOP/build/default}/tests/guest
for p in scribble integrity vbusd-death; do
	[ -x "$bin/$p" ] || { echo "FAIL: $bin/$p not built"; exit 1; }
done
base=$(vd_res_counts)
vd_start t vrdma0 || exit 1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"; vd_stop' EXIT
secs=${VBUS_SCRIBBLE_SECONDS:-2}	# each scribbler's, scaled (make soak: 30)
seed=${VBUS_SCRIBBLE_SEED:-$(( (RANDOM << 16) | RANDOM ))}
echo "seed $seed (VBUS_SCRIBBLE_SEED=$seed repeats the first scribbler)"
fail=0

# The integrity guest: client under vbus-run, native server, for as long as it takes.
vd_as guest native
port=$PT_PORT
timeout -k 5 "$(vt_secs 200)" "$bin/integrity" -d "$VBUS_RXE" -g "$VBUS_GID_INDEX" -p "$port" \
	>"$tmp/server" 2>&1 &
spid=$!
pt_wait_listen "$port" "$spid" || { echo "FAIL: the integrity server did not listen"; exit 1; }
timeout -k 5 "$(vt_secs 200)" "${PP_CLIENT_WRAP[@]}" "$bin/integrity" -d "$PP_CLIENT_DEV" \
	-g "$VBUS_GID_INDEX" -p "$port" -s "$seed" "$VBUS_IP" >"$tmp/client" 2>&1 &
cpid=$!

for s in "$seed" $((seed + 1)); do
	if timeout -k 5 "$(vt_secs $((secs + 60)))" "${VD_RUN[@]}" "$bin/scribble" vrdma0 "$VBUS_GID_INDEX" "$secs" "$s" \
		>"$tmp/scribble" 2>&1; then
		rc=0
	else
		rc=$?
	fi
	sum=$(grep '^summary:' "$tmp/scribble")
	echo "info scribbler (seed $s) exit $rc: ${sum:-no summary}"
	grep '^ok: ' "$tmp/scribble" | sed 's/^ok: /ok   /'
	grep -m 1 '^call channel:' "$tmp/scribble" | sed 's/^/info /'
	grep '^info: ' "$tmp/scribble" | sed 's/^info: /info /'
	grep -m 6 '^scribble:\|^event:' "$tmp/scribble" | sed 's/^/  | /'
	if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then
		echo "FAIL: the scribbler hung"; tail -5 "$tmp/scribble"; fail=1
	elif [ -z "$sum" ]; then
		echo "FAIL: the scribbler ended without its summary (exit $rc)"; tail -5 "$tmp/scribble"
		fail=1
	elif ! awk '{for (i = 1; i <= NF; i++) if ($i ~ /^(QP_FATAL|CQ_ERR|DEVICE_FATAL)$/) n += $(i + 1)}
		   END {exit !(n > 0)}' <<<"$sum"; then
		echo "FAIL: the scribbler was never told (no QP_FATAL, CQ_ERR or DEVICE_FATAL)"; fail=1
	else
		echo "ok   the scribbler was told and ended by itself"
	fi
	kill -0 "$VD_PID" 2>/dev/null && vd_ctl -j res show >/dev/null ||
		{ echo "FAIL: vbusd is gone or does not answer after the scribbler"; exit 1; }
done
echo "ok   vbusd answers after both scribblers"
echo "info vbusd closed $(grep -c 'call channel broken' "$VD_RUN_DIR/vbusd.log") connection(s) for a broken call channel"

wait "$cpid"; crc=$?
wait "$spid"; src=$?
if [ $crc = 0 ] && [ $src = 0 ]; then
	echo "ok   the integrity guest beside them: $(grep -h 'rounds in' "$tmp/client" | head -1)"
else
	echo "FAIL: the integrity guest beside the scribblers (client $crc, server $src)"
	sed 's/^/  client| /' "$tmp/client" | tail -15
	fail=1
fi
if "${VD_RUN[@]}" "$bin/vbusd-death" short vrdma0 "$VBUS_GID_INDEX" >"$tmp/new" 2>&1; then
	echo "ok   a new guest: $(grep '^ok' "$tmp/new")"
else
	echo "FAIL: a new guest after the scribblers"; cat "$tmp/new"; fail=1
fi
# vbusd itself holds nothing real while no guest has a context (the baseline is before it).
if vt_until 10 vd_res_is "$base"; then
	echo "ok   every real object released: res $(vd_res_counts)"
else
	echo "FAIL: res $(vd_res_counts), baseline $base"; fail=1
fi
exit $fail
