#!/bin/bash
# timeout: 300
# variants: default asan tsan
# The connector's messages from a VM (docs/vm.md, "The message channel"), no RDMA needed:
# vbusd boots Debian's VM kernel (VBUS_VM_DIR, default build/vm) with `vbusctl vm add` on a
# bus with an echo device; in the VM, the guest driver vbus_vmguest.ko (build/kernel) and
# tests/vmguest/connector speak HELLO, DEVENUM, DEVOPEN and DEVCALL through /dev/vbus-vm0
# (write/read), as a process on the host does over the bus's socket. Checked (the program
# checks the VM's side, see its comment; this script the host's):
#   - HELLO (of the features only events granted to a VM), DEVENUM lists e0, echo of 17
#     and 65536 bytes;
#   - O_NONBLOCK read: EAGAIN; poll; a second request before reading the answer: EBUSY;
#   - three files with connections of their own at once (`conns 3`): handles per
#     connection, one file's answer kept while another is served, events to their own
#     file only, two processes' 100 echoes each at once (none lost or swapped), a fourth
#     file EBUSY until one closes;
#   - malformed messages through the driver (10 bytes, a header len that disagrees,
#     nfds 1: EPROTO; op 99: -EOPNOTSUPP from the bus) and raw BAR2 writes with the driver
#     unbound (req_len 0xffffffff, req_kind 7, req_len 10, req_conn 3 of 3): each refused, logged by vbusd,
#     which goes on answering;
#   - shared regions (VBUS_VM_IOC_SHM): 16 pinned pages of a process in the VM read and
#     written by vbusd through echo's PEEK and POKE, VmPin back to 0 after SHMREVOKE and
#     after the connection's end, the driver's refusals (a DEVSHM written by a process,
#     bad ranges); vbusd logs no refused region;
#   - the bus's events (docs/vm.md, "Events"): echo's EVENT through BAR2's event ring to
#     VBUS_VM_IOC_EVENT, the bound eventfd signalled; 100 events not taken meanwhile each
#     taken in order or counted lost; the binding's refusals; `vm show` counts 104 events;
#   - closing the file ends the VM's guest connection (a new HELLO is accepted, the old
#     handle is gone); every connection the VM made is gone from `guest show` at the end;
#   - the PCI device removed under a process asleep in read(): ENODEV; a rescan probes it
#     again;
#   - the guest kernel logs no warning, oops or lockdep report; the module unloads;
#   - `vm del` leaves no QEMU, no child, no descriptor in vbusd; vbusd exits 0 on SIGTERM
#     and its log has no sanitizer report (the asan and tsan variants).
# Skips (77) when QEMU, the VM kernel, the module or a static busybox is missing.
set -u
top=${VBUS_TOP:-$(cd "$(dirname "$0")/../.." && pwd)}
. "$top/tests/lib/vmguest.sh"
vg_setup connector init-connector
ctl dev add e0 class echo bus b >/dev/null || fail "dev add e0"

ctl vm add t1 bus b kernel "$kernel" initrd "$tmp/initrd" mem "$mem" cpus 1 vectors 2 \
	conns 3 append "console=ttyS0 loglevel=7 panic=-1" || fail "vm add"
con=$run/vm/t1.console
done_() { grep -qs "VBUS-VM-CONN-EXIT\|VBUS-VM-CONN-FAIL" "$con" 2>/dev/null ||
	  vg_ended; }
vt_until 180 done_ || fail "the program in the VM did not end (state $(vg_field state))"
[ "$(vg_field state)" = running ] || fail "the VM is $(vg_field state): $(vg_field why)"
grep -q "VBUS-VM-CONN-OK" "$con" || fail "the program in the VM failed: $(grep VBUS-VM-CONN-FAIL "$con")"
grep "VBUS-VM " "$con" | sed 's/^/     /'
echo "ok   under $(vg_field accel): HELLO, DEVENUM, DEVOPEN, echo through /dev/vbus-vm0; malformed messages refused"

kill -0 "$vbusd_pid" || fail "vbusd died"
ctl -j bus show >/dev/null || fail "vbusd does not answer its control socket"
n=$(grep -c "vm t1: channel: request .* refused" "$run/vbusd.log")
[ "$n" = 7 ] || fail "vbusd logged $n refusals of the channel, not 7: $(grep 'channel:' "$run/vbusd.log")"
# Every connection ends once the VM's files are closed; the last one only after the host
# served, in order, its SLEEP (unless the removal's RESET overwrote it before vbusd copied
# it: the driver's remove does not wait) and then the RESET.
guests_gone() { [ "$(ctl -j guest show)" = "[]" ]; }
vt_until 30 guests_gone || fail "the VM's connections outlived it: $(ctl -j guest show)"
m=$(vg_field messages)
[ "$m" = 465 ] || [ "$m" = 464 ] || fail "vm show counted $m messages answered, not 464 or 465"
[ "$(vg_field events)" = 104 ] || fail "vm show counted $(vg_field events) events written into the ring, not 104 (echo's)"
[ "$(vg_field max_conns)" = 3 ] && [ "$(vg_field conns)" = 0 ] ||
	fail "vm show: max_conns $(vg_field max_conns), conns $(vg_field conns), not 3 and 0"
[ "$(vg_field refused)" = 7 ] || fail "vm show counted $(vg_field refused) refusals, not 7"
echo "ok   vbusd alive, counted $m messages answered by the bus and 104 events written, logged the channel's 7 refusals: $(grep -o 'refused: [^(]*' "$run/vbusd.log" | sort | uniq -c | tr -s ' ' | paste -sd ';')"
n=$(grep -c "guest [0-9]* connected (VM, QEMU pid $(vg_field pid)" "$run/vbusd.log")
[ "$n" = 7 ] || fail "vbusd made $n connections for the VM, not 7"
echo "ok   7 connections made for the VM (one per open file that wrote, 3 at once), all gone once closed"
! grep "region of .* refused" "$run/vbusd.log" || fail "vbusd refused a region the driver sent"

vt_until 30 grep -q "VBUS-VM-RMMOD-OK" "$con" || fail "rmmod vbus_vmguest failed"
if grep -E "WARNING:|BUG:|Oops|general protection|possible circular locking|inconsistent lock state|Call Trace" "$con"; then
	fail "the guest kernel logged a warning or an oops"
fi
grep -q "vbus_vmguest.*/dev/vbus-vm0: bus b.*, message channel, events" "$con" || fail "the driver did not find the channel and the event ring"
echo "ok   guest kernel: no warning or oops; driver unloaded"

vg_vm_del "$(vg_field pid)"
vt_until 10 guests_gone || fail "guests after vm del: $(ctl -j guest show)"
vg_vbusd_end
