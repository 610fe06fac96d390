#!/bin/bash
# timeout: 300
# variants: default
# vbusd's death seen from a VM (docs/vm.md, "vbusd's death"), no RDMA needed: vbusd boots
# Debian's VM kernel with `vbusctl vm add` on a bus with an echo device; in the VM,
# `tests/vmguest/connector beat` connects twice through /dev/vbus-vm0 (two files: two
# connections of the VM), opens e0 and binds the event eventfd on each, and waits. vbusd is then killed with SIGKILL: QEMU runs on (nothing tells it), but
# vbusd's heartbeat in BAR2 stops, and within the driver's host_timeout_ms (5 s by default)
# each connection gets a DISCONNECTED event (what the library turns into
# IBV_EVENT_DEVICE_FATAL) and its next request fails with ECONNRESET; and a verbs process
# (tests/guest/vm-pd events under vbus-run, on a vrdma device r0 of fake-verbs preloaded in
# vbusd), waiting in ibv_get_async_event, gets IBV_EVENT_DEVICE_FATAL. The time from the
# kill to the event is printed (a figure, not a limit: the VM runs under TCG). The guest
# kernel logs the driver's line and no warning or oops; the driver unloads. One VM boot,
# the default variant only (a killed vbusd has no sanitizer report to give).
# Skips (77) when QEMU, the VM kernel, the module or a static busybox is missing.
set -u
top=${VBUS_TOP:-$(cd "$(dirname "$0")/../.." && pwd)}
. "$top/tests/lib/vmguest.sh"
vg_populate() { vg_populate_verbs "$1" "$top/build/default/tests/guest/vm-pd"; }
vg_fake_verbs
vg_setup connector init-beat
qpid=
trap '[ -n "$qpid" ] && kill -KILL "$qpid" 2>/dev/null; vg_cleanup' EXIT
ctl dev add e0 class echo bus b >/dev/null || fail "dev add e0"
ctl dev add r0 class vrdma backing=fake0 backend=relay bus b >/dev/null || fail "dev add r0"
ctl vm add t1 bus b kernel "$kernel" initrd "$tmp/initrd" mem "$mem" cpus 1 vectors 4 \
	append "console=ttyS0 loglevel=7 panic=-1" || fail "vm add"
con=$run/vm/t1.console
ready() { grep -qs "VBUS-VM-BEAT-READY\|VBUS-VM-CONN-FAIL\|VBUS-VM-CONN-EXIT" "$con" ||
	  vg_ended; }
vt_until 180 ready || fail "the program in the VM did not connect (state $(vg_field state))"
grep -q "VBUS-VM-BEAT-READY" "$con" || fail "the program in the VM: $(grep 'VBUS-VM-CONN' "$con") (state $(vg_field state) $(vg_field why))"
qpid=$(vg_field pid)
[ -n "$qpid" ] && kill -0 "$qpid" || fail "no QEMU pid: $(ctl -j vm show t1)"
echo "ok   a process in the VM connected through /dev/vbus-vm0 and waits for an event"

kill -KILL "$vbusd_pid"
wait "$vbusd_pid" 2>/dev/null
vbusd_pid=
t0=$(date +%s%N)
done_() { grep -qs "VBUS-VM-BEAT-OK\|VBUS-VM-CONN-FAIL\|VBUS-VM-CONN-EXIT" "$con"; }
vt_until 60 done_ || fail "no end of the program in the VM $(vt_secs 60) s after vbusd's SIGKILL"
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
grep -q "VBUS-VM-BEAT-OK" "$con" || fail "the program in the VM: $(grep 'VBUS-VM-CONN-FAIL' "$con")"
kill -0 "$qpid" 2>/dev/null || fail "QEMU ended with vbusd: nothing left to check"
grep -q "vbus_vmguest.*vbusd's heartbeat stopped .* ms ago .*: the bus is gone" "$con" ||
	fail "the driver did not log vbusd's death"
echo "ok   vbusd killed (QEMU runs on): DISCONNECTED on both of the VM's connections about $ms ms later (heartbeat stopped, host_timeout_ms 5000), the next requests ECONNRESET"

ev_done() { grep -qs "^VBUS-EV-RC" "$con"; }
vt_until 90 ev_done || fail "vm-pd events in the VM did not end after vbusd's death"
tr -d '\r' <"$con" | grep -qx "VBUS-EV|VM-EV local catastrophic error" &&
	tr -d '\r' <"$con" | grep -qx "VBUS-EV-RC 0" ||
	fail "vm-pd events after vbusd's death: $(tr -d '\r' <"$con" | grep '^VBUS-EV')"
echo "ok   a verbs process in the VM (vm-pd events on r0) got IBV_EVENT_DEVICE_FATAL"
vt_until 30 grep -q "VBUS-VM-RMMOD-OK" "$con" || fail "rmmod vbus_vmguest failed"
if grep -E "WARNING:|BUG:|Oops|general protection|possible circular locking|inconsistent lock state|Call Trace" "$con"; then
	fail "the guest kernel logged a warning or an oops"
fi
echo "ok   guest kernel: no warning or oops; driver unloaded"
kill -KILL "$qpid"
qemu_gone() { [ ! -e "/proc/$qpid" ] || grep -q '^[0-9]* (.*) Z' "/proc/$qpid/stat"; }	# a zombie: its new parent reaps it
vt_until 10 qemu_gone || fail "QEMU $qpid does not end"
qpid=
exit 0
