#!/bin/bash
# The installed vbus-softroce, as a user runs it (scripts/install into build/softroce-test,
# per-user cache under XDG_CACHE_HOME), on one host: usage errors; a boot past
# --boot-timeout (125, console shown); --devices 2 --mtu 4200 with IPv4 and IPv6 RoCEv2
# GIDs in the variables, ibv_rc_pingpong over the IPv6 GID of rxe1; CMD writes into its
# working directory and the file is there afterwards, the rest of the host is read-only;
# CMD's failing exit status comes back; a second run with the cache warm fetches nothing
# and does not rebuild the initramfs; a hung CMD is stopped at --timeout with 124.
# Three VM boots, one of them cut short.
# timeout: 300
VBUS_TOP=${VBUS_TOP:-$(cd "$(dirname "$0")/../.." && pwd)}
. "$VBUS_TOP/tests/lib/softroce-test.sh"
cmd=$VBUS_TOP/softroce/vbus-softroce	# usage checks need no install
"$cmd" --help | grep -q -- '--hosts'; st_expect 0 $? "--help documents --hosts"
for bad in "--devices 9" "--mtu 100" "--hosts 3" "--cwd maybe" "--host-cmd 0 true" \
	"--cpu -x" "--append vbus.mode=probe"; do
	# shellcheck disable=SC2086
	"$cmd" $bad -- true 2>/dev/null; st_expect 2 $? "refused: $bad"
done
st_setup softroce-test

# Every fetch goes through apt-get (fetch-kernel): count the calls, pass them on.
mkdir -p "$ST_DIR/shim"
for t in apt-get apt-cache dpkg-deb; do
	printf '#!/bin/sh\necho "%s $*" >>%s/fetch.log\nPATH=${PATH#*shim:} exec %s "$@"\n' \
		"$t" "$ST_DIR" "$t" >"$ST_DIR/shim/$t"
	chmod +x "$ST_DIR/shim/$t"
done
export PATH=$ST_DIR/shim:$PATH
cd "$ST_WORK" || exit 1

start=$(date +%s)
# A one-second boot needs no turn on the machine's VM lock (its timing is what is checked).
lockf=$(mktemp)
err=$(VBUS_VM_LOCK=$lockf "$ST_CMD" --boot-timeout 1 -- true 2>&1); rc=$?
rm -f "$lockf"
st_expect 125 $rc "a boot past --boot-timeout fails"
grep -q 'last console lines' <<<"$err" || { echo "FAIL: no console lines shown: $err"; st_fail=1; }
[ $(( $(date +%s) - start )) -lt "$(vt_secs 30)" ] || { echo "FAIL: the failed boot took too long"; st_fail=1; }

# The job: what it finds, an IPv6 pingpong on the second device, a file, exit 7.
cat >job.sh <<'JOB'
env | grep '^VBUS_' | sort >env.txt
for d in rxe0 rxe1; do ibv_devinfo -d $d | grep -E 'state:|active_mtu:' | sed "s/^/$d /"; done >ports.txt
touch "$VBUS_T_TOP/softroce-ro-check" 2>/dev/null && echo "host tree writable" >ro.txt
ibv_rc_pingpong -d rxe1 -g "$VBUS_GID_INDEX6_1" -p 18600 -n 200 >pp.server 2>&1 &
s=$!
n=0
until ibv_rc_pingpong -d rxe1 -g "$VBUS_GID_INDEX6_1" -p 18600 -n 200 "$VBUS_IP_1" >pp.client 2>&1; do
	n=$((n + 1)); [ $n -lt 100 ] || break; sleep 0.2
done
wait $s; echo "server $?" >>pp.server
echo "written in the VM" >result.txt
exit 7
JOB
t0=$(date +%s)
VBUS_T_TOP=$VBUS_TOP "$ST_CMD" -q --devices 2 --mtu 4200 -- bash job.sh; rc=$?
first=$(( $(date +%s) - t0 ))
echo "     (first run, initramfs built: $first s)"
st_expect 7 $rc "CMD's exit status comes back"
[ "$(cat result.txt 2>/dev/null)" = "written in the VM" ] && echo "ok   CMD's file is in its working directory" ||
	{ echo "FAIL: result.txt not written back"; st_fail=1; }
[ ! -e "$VBUS_TOP/softroce-ro-check" ] && [ ! -e ro.txt ] && echo "ok   the rest of the host is read-only" ||
	{ echo "FAIL: CMD wrote into the host tree"; rm -f "$VBUS_TOP/softroce-ro-check"; st_fail=1; }
for v in VBUS_DEVICES=2 VBUS_RXE_1=rxe1 VBUS_IP_1=10.99.1.1 VBUS_IP6_1=fd99:0:0:1::1 \
	VBUS_IP6=fd99::1 VBUS_PEER_IP=10.99.0.2 VBUS_MTU=4200 VBUS_IB_MTU=4096 VBUS_HOSTS=1; do
	grep -qx "$v" env.txt || { echo "FAIL: no $v in CMD's environment"; st_fail=1; }
done
grep -Eq '^VBUS_GID_INDEX6_1=[0-9]+$' env.txt && grep -Eq '^VBUS_GID_INDEX=[0-9]+$' env.txt &&
	echo "ok   the variables of both devices, IPv4 and IPv6 GID indexes" ||
	{ echo "FAIL: GID indexes missing:"; cat env.txt; st_fail=1; }
[ "$(grep -c 'PORT_ACTIVE' ports.txt)" = 2 ] && [ "$(grep -c 'active_mtu:.*4096' ports.txt)" = 2 ] &&
	echo "ok   rxe0 and rxe1 ACTIVE, MTU 4096" || { echo "FAIL: ports:"; cat ports.txt; st_fail=1; }
grep -q '^200 iters in' pp.client && grep -q '^200 iters in' pp.server && grep -q '^server 0' pp.server &&
	echo "ok   ibv_rc_pingpong over the IPv6 GID of rxe1" ||
	{ echo "FAIL: IPv6 pingpong:"; cat pp.client pp.server; st_fail=1; }

initrd=$(ls "$XDG_CACHE_HOME"/vbus/initramfs-*.cpio.gz)
before=$(stat -c %Y "$initrd")
: >"$ST_DIR/fetch.log"
t0=$(date +%s)
# --timeout counts from the boot's start: the first run's whole time (a cold boot, the
# initramfs built, a job) and 2 s scaled more leave the warm boot room on any machine.
tmo=$(( first + $(vt_secs 2) ))
err=$("$ST_CMD" --timeout "$tmo" -- sleep 600 2>&1); rc=$?
echo "     (warm run stopped at --timeout $tmo: $(( $(date +%s) - t0 )) s)"
st_expect 124 $rc "a hung CMD is stopped at --timeout"
grep -q 'rxe0 ACTIVE' <<<"$err" && echo "ok   the warm run booted" || { echo "FAIL: no boot: $err"; st_fail=1; }
[ ! -s "$ST_DIR/fetch.log" ] && [ "$(stat -c %Y "$initrd")" = "$before" ] &&
	echo "ok   a run with the cache warm fetched nothing and kept the initramfs" ||
	{ echo "FAIL: the warm run fetched or rebuilt:"; cat "$ST_DIR/fetch.log"; st_fail=1; }
[ -z "$(ls -d "$XDG_CACHE_HOME"/vbus/run.* 2>/dev/null)" ] || { echo "FAIL: run directories left in the cache"; st_fail=1; }
exit $st_fail
