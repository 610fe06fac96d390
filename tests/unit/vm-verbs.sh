#!/bin/bash
# timeout: 300
# variants: default asan tsan
# The unmodified guest verbs library in a VM (docs/vm.md, "The guest library in a VM"), no
# RDMA needed: vbusd (with tests/lib/fake-verbs.c preloaded: one soft-RoCE-like device,
# fake0, and the module's admin descriptor on a plain file) has a bus with two vrdma
# devices on fake0, r0 (backend=relay) and k0 (backend=kernel), and boots Debian's VM kernel
# with an initramfs holding the guest driver, bash, vbus-run, libvbus-verbs.so (the default
# build) and Debian's ibv_devices and ibv_devinfo with the libraries they load. In the VM,
# under vbus-run with no option (the library finds /dev/vbus-vm0 itself):
#   - ibv_devices lists k0 and r0 with fake0's node GUID;
#   - ibv_devinfo -v -d r0 prints exactly what it prints in a process guest on the host
#     against the same vbusd (the "container guest" of the same device);
#   - ibv_devinfo -v -d k0 too, but for the name: the fake module refuses a foreign
#     attachment (a VM's, held by vbusd: docs/vm.md) as a module older than them does, so
#     vbusd serves the VM by the relay and logs why once (the host cannot compare: the
#     fake module's descriptor does no verbs);
#   - the library logs that it went through the VM's device, with no call channel;
#     ibv_devinfo with no -d lists both devices;
#   - tests/guest/vm-pd: a PD allocated and freed through the channel; CQs made on fake0
#     (rings in pages the driver pinned, doorbells and a completion channel on vectors),
#     an SRQ refused by fake0, an MR registered on fake0 with the buffer's address in the
#     VM as its iova (found in vbusd's log), a PD left at exit: vbusd frees it when the
#     VM's connection ends (fake-verbs counts PDs, CQs and MRs alive in vbusd's log: 0);
#   - the VM's budget of vbusd's mappings (`max-maps 256`, docs/vm.md "Mappings"):
#     `vm-pd maps` holds MRs until one is refused (ENOMEM, or EDQUOT for the region), vbusd's
#     log names the quota, one registers again after deregistration, and `vm show` says
#     maps 0 once the VM's connections are gone;
#   - the VM's max-pinned (`max-pinned 768K`): `vm-pd pin` registers one 64 KiB buffer
#     until a registration is refused (the 13th, ENOMEM), vbusd's log names the quota, and
#     `vm show` says pinned 0 once the VM's connections are gone;
#   - processes have connections of their own (`vm add ... conns 2`): while vm-pd holds
#     its connection, a second vm-pd runs whole (its CQs, MR and PD as the first's); with
#     two held, a third process (ibv_devices) is refused with EBUSY in one line naming
#     `conns` and sees no device; once one holder is killed, it is served;
#   - events (docs/vm.md, "Events"): r0 is removed on the host while `vm-pd events` waits
#     in ibv_get_async_event in the VM: it gets IBV_EVENT_DEVICE_FATAL (the bus's
#     DEV_REMOVED through BAR2's event ring), and `vm show` counts the event;
#   - hot removal and add: a new process in the VM then lists k0 only; one running process
#     (tests/guest/devlist) lists k0, then k0 r1 once r1 is added on the host, then k0 once
#     it is removed; before the VM, the same with a process guest on the host and r2;
#   - the guest kernel logs no warning or oops; the driver unloads;
#   - shut down from inside: the driver loaded again, a vm-pd holding a PD, then
#     `poweroff -f`: QEMU exits 0 and vbusd frees the PD with the VM's connections;
#   - vbusd alive; every connection of the VM gone; `vm del` leaves no QEMU, no child and
#     no descriptor in vbusd; vbusd exits 0 on SIGTERM, no sanitizer report.
# Skips (77) when QEMU, the VM kernel, the module, a static busybox, ibverbs-utils or bash's
# libraries are missing.
set -u
top=${VBUS_TOP:-$(cd "$(dirname "$0")/../.." && pwd)}
dflt=$top/build/default
for p in ibv_devinfo ibv_devices bash; do
	command -v $p >/dev/null || skip_early="no $p (make deps installs ibverbs-utils)"
done
[ -z "${skip_early:-}" ] || { echo "SKIP: $skip_early"; exit 77; }
[ -f "$dflt/lib/libvbus-verbs.so" ] || { echo "SKIP: no $dflt/lib/libvbus-verbs.so (make)"; exit 77; }

vg_populate() { # ROOT: the verbs library, vbus-run, bash and the rdma-core tools
	local root=$1
	mkdir -p "$root/vbus/bin" "$root/vbus/lib" "$root/usr/bin" "$root/tmp" || return 1
	cp "$dflt/bin/vbus-run" "$root/vbus/bin/" &&
	ln -s /bin/busybox "$root/usr/bin/env" &&
	vg_copy_dynamic "$root" "$(command -v bash)" "$(command -v ibv_devinfo)" \
		"$(command -v ibv_devices)" "$dflt/lib/libvbus-verbs.so" "$dflt/tests/guest/vm-pd" \
		"$dflt/tests/guest/devlist" &&
	mv "$root/$dflt/lib/libvbus-verbs.so" "$root/vbus/lib/" &&
	mv "$root/$dflt/tests/guest/devlist" "$root/" &&
	rm -rf "${root:?}/$dflt"
}
. "$top/tests/lib/vmguest.sh"
vg_fake_verbs	# vbusd of this variant with fake-verbs of this variant
vg_setup guest/vm-pd init-verbs
ctl dev add r0 class vrdma backing=fake0 backend=relay bus b >/dev/null || fail "dev add r0"
ctl dev add k0 class vrdma backing=fake0 backend=kernel bus b >/dev/null || fail "dev add k0"

# The same device from a process guest on the host first: the expectation.
host=$(VBUS_VERBS_LOG=0 "$dflt/bin/vbus-run" --no-hide --run-dir "$run" --bus b -- ibv_devinfo -v -d r0 2>&1) ||
	fail "ibv_devinfo -v -d r0 in a process guest: $host"
grep -q "GID\[  1\]:.*::ffff:192.0.2.1, RoCE v2" <<<"$host" || fail "the process guest's ibv_devinfo: $host"
guests_gone() { [ "$(ctl -j guest show)" = "[]" ]; }
vt_until 10 guests_gone || fail "the process guest's connection outlived it: $(ctl -j guest show)"
# Hot add and removal seen by one running process guest (each ibv_get_device_list
# enumerates the bus again, as rdma-core reads sysfs again).
"$dflt/bin/vbus-run" --run-dir "$run" --bus b -- "$dflt/tests/guest/devlist" "k0 r0" "k0 r0 r2" "k0 r0" \
	>"$tmp/devlist" 2>&1 &
dl=$!
vt_until 30 grep -q "^DEVLIST 1 " "$tmp/devlist" || fail "devlist in a process guest: $(cat "$tmp/devlist")"
ctl dev add r2 class vrdma backing=fake0 backend=relay bus b >/dev/null || fail "dev add r2"
vt_until 30 grep -q "^DEVLIST 2 " "$tmp/devlist" || fail "devlist after dev add r2: $(cat "$tmp/devlist")"
ctl dev del r2 >/dev/null || fail "dev del r2"
wait "$dl" || fail "devlist after dev del r2: $(cat "$tmp/devlist")"
echo "ok   one running process guest lists k0 r0, then k0 r0 r2 after dev add r2, then k0 r0 after dev del r2"
vt_until 10 guests_gone || fail "devlist's connection outlived it: $(ctl -j guest show)"
fds0=$(fds)	# with the devices and whatever the relay keeps between guests

ctl vm add t1 bus b kernel "$kernel" initrd "$tmp/initrd" mem "${VBUS_VMGUEST_MEM:-256M}" cpus 1 vectors 4 \
	conns 2 max-maps 256 max-pinned 768K append "console=ttyS0 loglevel=1 panic=-1" || fail "vm add"
con=$run/vm/t1.console
done_() { grep -qs "VBUS-VM-VERBS-EXIT" "$con" 2>/dev/null ||
	  vg_ended; }
# The bus's events in the VM: r0 removed on the host while a process there waits in
# ibv_get_async_event on it.
ev_ready() { grep -qs "^VBUS-EV-WAITING" "$con" 2>/dev/null || done_; }
vt_until 180 ev_ready || fail "vm-pd events did not start (state $(vg_field state))"
! done_ || fail "the VM finished before vm-pd events waited: $(tr -d '\r' <"$con" | tail -n 5)"
ctl dev del r0 >/dev/null || fail "dev del r0"
at() { grep -qs "^VBUS-$1-WAITING" "$con" 2>/dev/null || done_; }	# STEP: ADD or DEL
vt_until 180 at ADD || fail "the VM did not get to the hot add (state $(vg_field state))"
ctl dev add r1 class vrdma backing=fake0 backend=relay bus b >/dev/null || fail "dev add r1"
vt_until 180 at DEL || fail "the VM did not get to the hot removal (state $(vg_field state))"
ctl dev del r1 >/dev/null || fail "dev del r1"
vt_until 180 done_ || fail "the VM did not finish (state $(vg_field state))"
# It powers off from inside once it has printed its last line (below).
case $(vg_field state) in
running) ;;
exited) [ "$(vg_field exit)" = 0 ] || fail "the VM exited $(vg_field exit): $(vg_field why)" ;;
*) fail "the VM is $(vg_field state): $(vg_field why)" ;;
esac
out() { tr -d '\r' <"$con" | sed -n "s/^$1|//p"; }   # TAG: the tagged lines of the console
rc() { tr -d '\r' <"$con" | sed -n "s/^$1-RC //p"; }

[ "$(rc VBUS-DEVICES)" = 0 ] || fail "ibv_devices in the VM: $(out VBUS-DEVICES)"
for d in k0 r0; do
	out VBUS-DEVICES | grep -Eq "^[[:space:]]+$d[[:space:]]+505400fffe123456$" || fail "ibv_devices in the VM: no $d: $(out VBUS-DEVICES)"
done
echo "ok   ibv_devices in the VM: $(out VBUS-DEVICES | tail -n +3 | tr -s ' \t' ' ' | paste -sd ';')"

[ "$(rc VBUS-DI-r0)" = 0 ] || fail "ibv_devinfo -v -d r0 in the VM: $(out VBUS-DI-r0)"
# (each as $(...) leaves it: without the final empty line)
if ! diff <(echo "$host") <(echo "$(out VBUS-DI-r0)") >"$tmp/diff"; then
	cat "$tmp/diff"
	fail "ibv_devinfo -v -d r0: the VM's output differs from the process guest's"
fi
echo "ok   ibv_devinfo -v -d r0 in the VM: $(out VBUS-DI-r0 | wc -l) lines, the same as in a process guest on the host"
[ "$(rc VBUS-DI-k0)" = 0 ] || fail "ibv_devinfo -v -d k0 in the VM: $(out VBUS-DI-k0)"
diff <(sed 's/^hca_id:\tr0$/hca_id:\tk0/' <<<"$host") <(echo "$(out VBUS-DI-k0)") >"$tmp/diff" ||
	{ cat "$tmp/diff"; fail "ibv_devinfo -v -d k0 in the VM differs from r0's but for its name"; }
grep -q "vrdma k0: the loaded module has no foreign attachments: VMs are served by the relay" "$run/vbusd.log" ||
	fail "vbusd did not say why k0 serves the VM by the relay: $(grep 'k0' "$run/vbusd.log" | tail -n 3)"
echo "ok   ibv_devinfo -v -d k0 (backend=kernel) in the VM: served by the relay (the fake module has no foreign attachments, as an older one), the same attributes"

log=$(out VBUS-LOG)
[ "$(rc VBUS-LOG)" = 0 ] || fail "ibv_devinfo -l in the VM: $log"
grep -q "bus 'b' through the VM's device: calls go over its message channel" <<<"$log" &&
	grep -q "bus 'b': 2 vrdma device(s)" <<<"$log" || fail "the library's log in the VM: $log"
[ "$(rc VBUS-DI-ALL)" = 0 ] && [ "$(out VBUS-DI-ALL | grep -c '^hca_id:')" = 2 ] ||
	fail "ibv_devinfo in the VM: $(out VBUS-DI-ALL)"
echo "ok   the library chose /dev/vbus-vm0 of bus b by itself, no call channel; ibv_devinfo lists 2 devices"

[ "$(rc VBUS-PD)" = 0 ] && out VBUS-PD | grep -q "^VM-PD-OK" || fail "vm-pd in the VM: $(out VBUS-PD)"
echo "ok   vm-pd in the VM: $(out VBUS-PD | grep -v VM-PD-OK | paste -sd ';')"
iova=$(out VBUS-PD | sed -n 's/^MR iova \(0x[0-9a-f]*\) .*/\1/p')
[ -n "$iova" ] && grep -q "fake-verbs: ibv_reg_mr: 1 alive, length 8192, iova $iova\$" "$run/vbusd.log" ||
	fail "vm-pd's MR (iova ${iova:-none}) was not registered on fake0 as such: $(grep 'fake-verbs: ibv_reg_mr' "$run/vbusd.log")"
echo "ok   vm-pd's MR registered on the host's device with the VM's address $iova as its iova"
maps=$(out VBUS-MAPS | sed -n 's/^VM-MAPS registered \([0-9]*\), then \(ENOMEM\|EDQUOT\)$/\1/p')
[ "$(rc VBUS-MAPS)" = 0 ] && [ -n "$maps" ] && out VBUS-MAPS | grep -q "^VM-PD-OK" ||
	fail "vm-pd maps in the VM (max-maps 256): $(out VBUS-MAPS)"
grep -q "quota vm max-maps (256) reached" "$run/vbusd.log" ||
	fail "vbusd did not name the VM's max-maps: $(grep quota "$run/vbusd.log" | tail -n 3)"
echo "ok   the VM's budget of vbusd's mappings (max-maps 256): $maps MRs of 8 KiB held, the next refused ($(out VBUS-MAPS | sed -n 's/.*then //p'), quota named in vbusd's log); after deregistration one registers again"
# The VM's max-pinned: 768 KiB / 64 KiB = 12 registrations of one buffer, the 13th refused
# as a pin past a limit natively (ENOMEM).
[ "$(rc VBUS-PIN)" = 0 ] && out VBUS-PIN | grep -qx "VM-PIN registered 12, then ENOMEM" ||
	fail "vm-pd pin in the VM (max-pinned 768K): $(out VBUS-PIN)"
grep -q "quota vm max-pinned (786432) reached" "$run/vbusd.log" ||
	fail "vbusd did not name the VM's max-pinned: $(grep quota "$run/vbusd.log" | tail -n 3)"
echo "ok   the VM's max-pinned (768K): 12 MRs of 64 KiB held, the 13th refused with ENOMEM (quota named in vbusd's log); after deregistration one registers again"
out VBUS-HOLD | grep -q "^VM-PD-OK" && out VBUS-HOLD2 | grep -q "^VM-PD-OK" ||
	fail "vm-pd hold in the VM: $(out VBUS-HOLD) / $(out VBUS-HOLD2)"
[ "$(rc VBUS-PD2)" = 0 ] && out VBUS-PD2 | grep -q "^VM-PD-OK" ||
	fail "a second vm-pd while the first holds its connection: $(out VBUS-PD2)"
echo "ok   a second vm-pd while another process holds its connection: $(out VBUS-PD2 | grep -v VM-PD-OK | paste -sd ';')"
out VBUS-BUSY | grep -q "cannot attach to the VM's bus through this VM's /dev/vbus-vmN: Device or resource busy (every connection of the VM is taken: vbusctl vm add ... conns N)" &&
	! out VBUS-BUSY | grep -q "505400fffe123456" ||
	fail "a third process while two hold the VM's 2 connections: $(out VBUS-BUSY)"
[ "$(rc VBUS-AFTER)" = 0 ] && [ "$(out VBUS-AFTER | grep -c 505400fffe123456)" = 2 ] ||
	fail "ibv_devices once a holder is gone: $(out VBUS-AFTER)"
echo "ok   a third process while two hold the VM's 2 connections: refused (EBUSY, one line); served once one is gone"

[ "$(rc VBUS-EV)" = 0 ] && out VBUS-EV | grep -qx "VM-EV local catastrophic error" ||
	fail "the device removed on the host: no DEVICE_FATAL in the VM: $(out VBUS-EV)"
events=$(vg_field events)
[ "${events:-0}" -ge 1 ] || fail "vm show counts no event written to the VM: $(ctl -j vm show t1)"
echo "ok   r0 removed on the host: IBV_EVENT_DEVICE_FATAL in the VM's ibv_get_async_event (the bus's DEV_REMOVED through the event ring; vm show: $events event(s))"

listed() { out "$1" | grep -Eo "^[[:space:]]+[a-z0-9]+[[:space:]]+505400fffe123456$" | awk '{print $1}' | sort | paste -sd ' '; }
[ "$(rc VBUS-GONE)" = 0 ] && [ "$(listed VBUS-GONE)" = k0 ] ||
	fail "after r0's removal on the host, ibv_devices in the VM: $(out VBUS-GONE)"
[ "$(rc VBUS-ADDED)" = 0 ] && [ "$(out VBUS-ADDED | paste -sd ';')" = "DEVLIST 1 k0;DEVLIST 2 k0 r1;DEVLIST 3 k0" ] ||
	fail "one process in the VM across dev add r1 and dev del r1 on the host: $(out VBUS-ADDED)"
echo "ok   hot removal and add in the VM: after dev del r0 a new process lists k0 only; one running process lists k0, then k0 r1 after dev add r1, then k0 after dev del r1"

out VBUS-DMESG >"$tmp/dmesg"
grep -q "vbus_vmguest.*/dev/vbus-vm0: bus b.*, message channel" "$tmp/dmesg" || fail "the driver did not find the channel: $(cat "$tmp/dmesg")"
if grep -E "WARNING:|BUG:|Oops|general protection|possible circular locking|inconsistent lock state|Call Trace" "$tmp/dmesg"; then
	fail "the guest kernel logged a warning or an oops"
fi
grep -q "VBUS-VM-RMMOD-OK" "$con" || fail "rmmod vbus_vmguest failed"
echo "ok   guest kernel: no warning or oops; driver unloaded"

out VBUS-LAST | grep -q "^VM-PD-OK" || fail "the last holder in the VM: $(out VBUS-LAST)"
vt_until 120 vg_ended || fail "the VM did not power off from inside (state $(vg_field state))"
[ "$(vg_field state)" = exited ] && [ "$(vg_field exit)" = 0 ] ||
	fail "the VM's poweroff: state $(vg_field state), exit $(vg_field exit) $(vg_field why)"
echo "ok   the VM powered off from inside while a process held a PD on the host: QEMU exited 0"
kill -0 "$vbusd_pid" || fail "vbusd died"
vt_until 30 guests_gone || fail "the VM's connections outlived its processes: $(ctl -j guest show)"
alive=$(grep -o "fake-verbs: ibv_[a-z_]*pd: [0-9]* alive" "$run/vbusd.log" | tail -n 1)
[ "$alive" = "fake-verbs: ibv_dealloc_pd: 0 alive" ] || fail "PDs after the VM's processes ended: $alive"
[ "$(grep -c "fake-verbs: ibv_alloc_pd" "$run/vbusd.log")" = 17 ] || fail "not 17 PDs allocated: $(grep fake-verbs "$run/vbusd.log")"
echo "ok   vbusd alive; every connection of the VM gone; 17 PDs made, none left ($alive)"
[ "$(vg_field maps)" = 0 ] && [ "$(vg_field max_maps)" = 256 ] &&
	[ "$(vg_field pinned)" = 0 ] && [ "$(vg_field max_pinned)" = 786432 ] ||
	fail "the VM's mappings and pins once its connections are gone: $(ctl -j vm show t1)"
echo "ok   vm show: max_maps 256, maps 0, max_pinned 786432, pinned 0 once the VM's connections are gone"
for o in cq:create_cq:destroy_cq:10 mr:reg_mr:dereg_mr:$((5 + maps + 1 + 12 + 1)); do
	IFS=: read -r what made gone n <<<"$o"
	last=$(grep -o "fake-verbs: ibv_\($made\|$gone\): [0-9]* alive" "$run/vbusd.log" | tail -n 1)
	[ "$last" = "fake-verbs: ibv_$gone: 0 alive" ] || fail "${what}s after the VM's processes ended: $last"
	[ "$(grep -c "fake-verbs: ibv_$made:" "$run/vbusd.log")" = "$n" ] ||
		fail "not $n ${what}s made: $(grep "fake-verbs: ibv_$made" "$run/vbusd.log")"
done
echo "ok   10 CQs and $((5 + maps + 1 + 12 + 1)) MRs made on fake0 from the VM (five vm-pd, two at a time, vm-pd maps and vm-pd pin), none left"

vg_vm_del "$(vg_field pid)"
vg_vbusd_end
