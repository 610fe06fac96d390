#!/bin/bash
# UCX in guests (issue 15, docs/verbs.md): Debian's UCX 1.13, unmodified.
# - UCX lists an IB device only when /dev/infiniband/<dev_name> is a character device it may
#   read and write; vbus-run's /dev/infiniband is a private nodev tmpfs, where the guest
#   library puts a placeholder per vrdma device: /dev/null's numbers, mode 0666, and no open
#   succeeds (nodev). The host's own /dev/infiniband gets nothing.
# - `ucx_info -d` in a guest lists the vrdma device's rc_verbs and ud_verbs as natively.
# - `ucx_perftest -t am_lat` and `-t put_lat` over rc_verbs: native control, guest to native,
#   native to guest, guest to guest; every run completes its iterations, and the median
#   latencies are printed side by side (figures, not limits). The vrdma device carries the
#   real device's name, since a ucx_perftest server takes the device name from its client.
#   ud_verbs is not run: on this rxe its server aborts natively ("unhandled timeout error").
# timeout: 600
. "${VBUS_TOP:?}/tests/lib/vbusd.sh"
. "$VBUS_TOP/bench/lib/perftest.sh"
for p in ucx_info ucx_perftest; do
	command -v $p >/dev/null || { echo "SKIP: no $p (make deps installs ucx-utils)"; exit 77; }
done
vd_start t "$VBUS_RXE" || exit 1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"; vd_stop' EXIT
fail=0
ok() { echo "ok   $*"; }
bad() { echo "FAIL $*"; fail=1; }
node=/dev/infiniband/vbus-$VBUS_RXE

# The placeholder: there after the device list is read, a character device, unopenable.
out=$("${VD_RUN[@]}" sh -c 'ibv_devices >/dev/null; stat -c "%F %a %t:%T" "$0"; : <"$0" && echo opened' \
	"$node" 2>&1)
if [ "$(head -n1 <<<"$out")" = "character special file 666 1:3" ] && ! grep -q '^opened' <<<"$out" &&
   grep -q 'Permission denied' <<<"$out"; then
	ok "the guest's $node: a character device, mode 666, no open (nodev)"
else
	bad "the guest's $node:"; sed 's/^/  | /' <<<"$out"
fi
[ ! -e "$node" ] && ok "the host's /dev/infiniband has no $(basename "$node")" ||
	bad "$node exists outside the guest's namespace"

# ucx_info -d: the IB transports of the device, guest and native.
tls() { grep -A1 -E '^# +Transport: (rc|ud)_verbs' | awk '/Transport:/{t=$3} /Device:/{print t, $3}' | sort; }
ucx_info -d 2>&1 | tls >"$tmp/native-tls"
"${VD_RUN[@]}" ucx_info -d 2>&1 | tls >"$tmp/guest-tls"
if grep -qx "rc_verbs $VBUS_RXE:1" "$tmp/native-tls" && cmp -s "$tmp/native-tls" "$tmp/guest-tls"; then
	ok "ucx_info -d lists $(paste -sd, "$tmp/guest-tls") in the guest, as natively"
else
	bad "ucx_info -d: native '$(paste -sd, "$tmp/native-tls")', guest '$(paste -sd, "$tmp/guest-tls")'"
fi

# ucx_perftest pairs over rc_verbs (UCT), on the bus's GID index.
export UCX_IB_GID_INDEX=$VBUS_GID_INDEX
N=${VBUS_UCX_ITERS:-2000}
port=$((13400 + RANDOM % 500))
declare -A fig=()
pair() { # TEST CLIENT SERVER
	local t=$1 c=() s=() sp crc src v
	port=$((port + 1))
	[ "$2" = guest ] && c=("${VD_RUN[@]}")
	[ "$3" = guest ] && s=("${VD_RUN[@]}")
	timeout "$(vt_secs 120)" "${s[@]}" ucx_perftest -p $port >"$tmp/s" 2>&1 &
	sp=$!
	pt_wait_listen $port $sp || { bad "$t $2-$3: the server never listened"; cat "$tmp/s"; return; }
	timeout "$(vt_secs 120)" "${c[@]}" ucx_perftest 127.0.0.1 -p $port -t "$t" -d "$VBUS_RXE:1" \
		-x rc_verbs -n "$N" >"$tmp/c" 2>&1 &
	pt_wait_pair $! $sp	# (a side that fails stops the other)
	crc=$PT_CRC src=$PT_SRC
	v=$(awk -v n="$N" '$1 == "Final:" && $2 == n {print $3}' "$tmp/c")
	if [ $crc = 0 ] && [ $src = 0 ] && [ -n "$v" ]; then
		fig[$t,$2-$3]=$v
		ok "ucx_perftest -t $t -x rc_verbs, client $2, server $3: $N iterations, median $v us"
	else
		bad "ucx_perftest -t $t, client $2 (exit $crc), server $3 (exit $src):"
		sed 's/^/  client| /' "$tmp/c" | tail -n 15; sed 's/^/  server| /' "$tmp/s" | tail -n 10
	fi
}
for t in am_lat put_lat; do
	for p in "native native" "guest native" "native guest" "guest guest"; do
		# shellcheck disable=SC2086
		pair $t $p
	done
done
echo "     median latency (us), ${VD_BACKEND:-auto} backend: test native guest-native native-guest guest-guest"
for t in am_lat put_lat; do
	echo "     $t ${fig[$t,native-native]:--} ${fig[$t,guest-native]:--} ${fig[$t,native-guest]:--} ${fig[$t,guest-guest]:--}"
done
exit $fail
