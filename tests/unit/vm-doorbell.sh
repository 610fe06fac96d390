#!/bin/bash
# timeout: 300
# variants: default asan tsan
# A VM guest on this host, no RDMA needed (docs/vm.md): vbusd boots Debian's VM kernel
# (VBUS_VM_DIR, default build/vm) under QEMU with `vbusctl vm add`, the guest driver
# vbus_vmguest.ko (build/kernel) and tests/vmguest/doorbell in a small initramfs built
# here. Checked:
#   - bad `vm add` words are refused with a one-line error and make no VM;
#   - QEMU runs with -nic none, its RAM on vbusd's memfd (mapped by vbusd too) and the
#     ivshmem-doorbell device whose server is vbusd;
#   - vbusd reads the VM's RAM where the VM has it: `vm peek` at the guest-physical address
#     of a page of the program (its pagemap) gives the bytes the program wrote there; a
#     range outside the VM's RAM is refused;
#   - guest to host: the program rings vector 1 five times and vector 2 twice, and vbusd
#     counts exactly [1,5,2,0] (vector 0 is the message channel's: the driver's probe posts
#     one RESET there, and vbusd answers it with one interrupt);
#   - host to guest: `vm notify` on vector 1 reaches the eventfd the program bound, once,
#     and no other vector (the program checks, and prints VBUS-VM-OK);
#   - the driver's remove with a file open (PCI remove through sysfs): ioctls fail with
#     ENODEV; a rescan probes it again (its RESET: vector 0) and it rings vector 3 (vbusd
#     counts [2,5,2,1]); the
#     module unloads;
#   - accel auto: in the default variant vbusd probes KVM itself (a file of its own for
#     --kvm-probe) and keeps "BOOT-ID ok|hang|no-dev" there, the answer the VM runs under;
#     the other variants read the answer kept for this host boot (VBUS_VM_DIR/kvm-probe);
#   - the guest kernel logs no warning, oops or lockdep report;
#   - `vm del` leaves no QEMU process and no descriptor in vbusd; a VM still running when
#     vbusd gets SIGTERM is stopped with it.
# Skips (77) when QEMU, the VM kernel, the module or a static busybox is missing.
set -u
top=${VBUS_TOP:-$(cd "$(dirname "$0")/../.." && pwd)}
. "$top/tests/lib/vmguest.sh"
if [ "$build" = "$top/build/default" ]; then	# this variant probes KVM for real
	VG_KVM_PROBE=$(mktemp /tmp/vbus-kvm-probe.XXXXXX) && rm -f "$VG_KVM_PROBE"
	vg_on_exit() { rm -f "$VG_KVM_PROBE"; }
fi
vg_setup doorbell init

# Refusals: each a one-line error, no VM.
refuse() { # WHAT ARGS...
	local what=$1 out
	shift
	if out=$(ctl vm add "$@" 2>&1); then fail "vm add accepted $what"; fi
	[ "$(wc -l <<<"$out")" = 1 ] || fail "not a one-line error for $what: $out"
	echo "ok   refused $what: $out"
}
refuse "an unknown bus" t1 bus nosuch kernel "$kernel"
refuse "a relative kernel path" t1 bus b kernel vmlinuz
refuse "a missing kernel" t1 bus b kernel /nonexistent/vmlinuz
refuse "no kernel" t1 bus b
refuse "mem 1M" t1 bus b kernel "$kernel" mem 1M
refuse "mem 100000G" t1 bus b kernel "$kernel" mem 100000G
refuse "cpus 0" t1 bus b kernel "$kernel" cpus 0
refuse "vectors 65" t1 bus b kernel "$kernel" vectors 65
refuse "max-maps 0" t1 bus b kernel "$kernel" max-maps 0
refuse "max-maps past half of vm.max_map_count" t1 bus b kernel "$kernel" max-maps 4000000000
refuse "max-pinned 1K" t1 bus b kernel "$kernel" max-pinned 1K
refuse "max-pinned 65G" t1 bus b kernel "$kernel" max-pinned 65G
refuse "max-pinned 1X" t1 bus b kernel "$kernel" max-pinned 1X
refuse "mem 33M+1K" t1 bus b kernel "$kernel" mem 33793K
refuse "accel xen" t1 bus b kernel "$kernel" accel xen
refuse "net tap" t1 bus b kernel "$kernel" net tap
refuse "net tap:a,b" t1 bus b kernel "$kernel" net tap:a,b
refuse "net tap: with a 16-character name" t1 bus b kernel "$kernel" net tap:abcdefghijklmnop
refuse "a bad name" "a/b" bus b kernel "$kernel"
refuse "an unknown word" t1 bus b kernel "$kernel" disk /dev/sda
[ "$(ctl -j vm show)" = "[]" ] || fail "a refused vm add left a VM: $(ctl -j vm show)"

# A file QEMU cannot boot: the VM ends at once, with QEMU's error as the reason.
echo "not a kernel" >"$tmp/not-a-kernel"
ctl vm add bad bus b kernel "$tmp/not-a-kernel" accel tcg mem 64M || fail "vm add bad"
bad_ended() { ctl vm show bad | grep -q "state exited"; }
vt_until 30 bad_ended || fail "QEMU did not end on a kernel it cannot load: $(ctl vm show bad)"
why=$(ctl -j vm show bad | sed -n 's/.*"exit":\([0-9]*\),"why":"\([^"]*\)".*/\1 \2/p')
[ -n "$why" ] && [ "${why%% *}" != 0 ] || fail "no exit status and reason: $(ctl -j vm show bad)"
echo "ok   a kernel QEMU cannot load: exit ${why%% *}, why: ${why#* }"
ctl vm del bad || fail "vm del bad"

ctl vm add t1 bus b kernel "$kernel" initrd "$tmp/initrd" mem "$mem" cpus 1 vectors 4 \
	append "console=ttyS0 loglevel=7 panic=-1" || fail "vm add"
con=$run/vm/t1.console
mac1=$(vg_field mac t1)
[[ $mac1 =~ ^52:54:00(:[0-9a-f]{2}){3}$ ]] || fail "t1's NIC address '$mac1' is not 52:54:00:xx:xx:xx"
refuse "a second VM of the same name" t1 bus b kernel "$kernel"
out=$(ctl bus del b 2>&1) && fail "bus del of a bus with a VM on it accepted"
echo "ok   refused: $out"

# The KVM probe (when /dev/kvm exists) and a TCG boot take most of this.
ready() { grep -qs "VBUS-VM rang\|VBUS-VM-FAIL\|VBUS-VM-EXIT" "$con" 2>/dev/null ||
	  vg_ended; }
vt_until 120 ready || fail "the VM did not get to ringing (state $(vg_field state))"
grep -q "VBUS-VM-FAIL" "$con" && fail "the program in the VM failed: $(grep VBUS-VM-FAIL "$con")"
[ "$(vg_field state)" = running ] || fail "the VM is $(vg_field state): $(vg_field why)"
echo "ok   booted under $(vg_field accel): $(grep 'VBUS-VM info' "$con")"
if [ -n "${VG_KVM_PROBE:-}" ]; then
	kept=$(cat "$VG_KVM_PROBE" 2>/dev/null)
	want=$(cat /proc/sys/kernel/random/boot_id)
	case $kept in
	"$want ok") [ "$(vg_field accel)" = kvm ] ;;
	"$want hang"|"$want no-dev") [ "$(vg_field accel)" = tcg ] ;;
	*) false ;;
	esac || fail "the KVM probe kept '$kept' in --kvm-probe's file, the VM runs under $(vg_field accel)"
	echo "ok   the KVM probe's answer kept for this host boot: '${kept#* }'"
fi

qpid=$(vg_field pid)
cmd=$(tr '\0' ' ' <"/proc/$qpid/cmdline")
for w in "-nic none" "ivshmem-doorbell,chardev=vbus-ivs,vectors=4" "share=on,mem-path=/proc/self/fd/3" \
	 "socket,id=vbus-ivs,fd=4"; do
	[[ $cmd == *"$w"* ]] || fail "QEMU's command line lacks '$w': $cmd"
done
[[ $(readlink "/proc/$qpid/fd/3") == "/memfd:vbus-vm-ram"* ]] || fail "QEMU's fd 3 is not the RAM memfd"
grep -q "memfd:vbus-vm-ram" "/proc/$vbusd_pid/maps" || fail "vbusd has not mapped the VM's RAM"
echo "ok   QEMU $qpid: -nic none, RAM on vbusd's memfd (mapped by vbusd), ivshmem served by vbusd"

# The program's page, read by vbusd through its mapping of the RAM memfd.
read -r gpa want < <(sed -n 's/.*VBUS-VM ram gpa \(0x[0-9a-f]*\) hex \([0-9a-f]*\).*/\1 \2/p' "$con")
[ -n "${want:-}" ] || fail "the program did not publish its page"
got=$(ctl vm peek t1 "$gpa" 32) || fail "vm peek t1 $gpa 32"
[ "$got" = "$want" ] || fail "vbusd read $got at $gpa, the VM wrote $want"
echo "ok   vbusd reads the VM's RAM: 32 bytes at guest-physical $gpa as the program wrote them"
ram=$(vg_field mem)	# below 4 GiB: all of it
[ -n "$ram" ] && [ "$ram" -lt $((2 << 30)) ] || fail "vm show's mem: '$ram' (this check wants less than 2 GiB)"
out=$(ctl vm peek t1 "$ram" 1 2>&1) && fail "a peek past the VM's $((ram >> 20)) MiB accepted: $out"
out=$(ctl vm peek t1 $((ram - 16)) 32 2>&1) && fail "a peek across the RAM's end accepted"
out=$(ctl vm peek t1 0 257 2>&1) && fail "a 257-byte peek accepted"
echo "ok   refused peeks outside the RAM: $out"

counted() { [ "$(vg_field doorbells)" = "$1" ]; }
vt_until 30 counted "[1,5,2,0]" || fail "vbusd counted doorbells $(vg_field doorbells), not [1,5,2,0]"
sleep 1
counted "[1,5,2,0]" || fail "doorbells went on to $(vg_field doorbells)"
echo "ok   guest to host: vbusd counted doorbells [1,5,2,0] (vector 0: the driver's RESET at probe)"

out=$(ctl vm notify t1 4 2>&1) && fail "notify on vector 4 of 4 accepted"
echo "ok   refused: $out"
ctl vm notify t1 1 || fail "vm notify"
vt_until 30 grep -q "VBUS-VM-OK\|VBUS-VM-FAIL" "$con" || fail "the interrupt did not reach the program"
grep -q "VBUS-VM-OK" "$con" || fail "the program in the VM failed: $(grep VBUS-VM-FAIL "$con")"
# Vector 0 is the message channel's: the unplug test's re-probe (already running) adds one.
[[ $(vg_field interrupts) == "["[12]",1,0,0]" ]] || fail "vbusd counted interrupts $(vg_field interrupts)"
echo "ok   host to guest: $(grep 'VBUS-VM irq' "$con")"

vt_until 60 grep -q "VBUS-VM-UNPLUG-EXIT" "$con" || fail "the unplug test did not end"
grep -q "VBUS-VM-UNPLUG-OK" "$con" || fail "the unplug test failed: $(grep VBUS-VM-FAIL "$con")"
vt_until 30 grep -q "VBUS-VM-RMMOD-OK" "$con" || fail "rmmod vbus_vmguest failed"
vt_until 30 counted "[2,5,2,1]" || fail "after the rescan vbusd counted $(vg_field doorbells), not [2,5,2,1]"
echo "ok   PCI remove with a file open: ENODEV; rescan: probed again, rang vector 3; rmmod clean"

if grep -E "WARNING:|BUG:|Oops|general protection|possible circular locking|inconsistent lock state|Call Trace" "$con"; then
	fail "the guest kernel logged a warning or an oops"
fi
grep -q "vbus_vmguest.*/dev/vbus-vm0: bus b" "$con" || fail "the driver did not say it probed"

ctl vm del t1 || fail "vm del"
[ ! -e "/proc/$qpid" ] || fail "QEMU $qpid still exists after vm del"
[ -z "$(ps -o pid= --ppid "$vbusd_pid")" ] || fail "vbusd still has children: $(ps --ppid "$vbusd_pid")"
[ "$(ctl -j vm show)" = "[]" ] || fail "vm show after del: $(ctl -j vm show)"
[ "$(fds)" = "$fds0" ] || fail "vbusd had $fds0 descriptors before the VM, $(fds) after: $(ls -l /proc/$vbusd_pid/fd)"
grep -q "memfd:vbus-vm-ram" "/proc/$vbusd_pid/maps" && fail "vbusd still maps the VM's RAM"
echo "ok   vm del: no QEMU, no child, $fds0 descriptors as before, RAM unmapped"

# A running VM ends with vbusd.
ctl vm add t2 bus b kernel "$kernel" initrd "$tmp/initrd" mem "$mem" accel tcg \
	append "console=ttyS0 panic=-1" || fail "vm add t2"
con=$run/vm/t2.console
[ "$(vg_field mac t2)" != "$mac1" ] || fail "t1 and t2 have the same NIC address $mac1"
echo "ok   NIC addresses of the VMs' names: t1 $mac1, t2 $(vg_field mac t2)"
vt_until 60 grep -qs "VBUS-VM init" "$con" || fail "t2 did not start"
qpid=$(vg_field pid t2)
[ -n "$qpid" ] && [ -e "/proc/$qpid" ] || fail "t2's QEMU is not running: $(ctl vm show t2)"
kill -TERM "$vbusd_pid"
wait "$vbusd_pid"
rc=$?
vbusd_pid=
[ $rc = 0 ] || fail "vbusd exited $rc on SIGTERM"
[ -n "$qpid" ] && [ ! -e "/proc/$qpid" ] || fail "QEMU ${qpid:-?} outlived vbusd"
echo "ok   SIGTERM to vbusd with a running VM: vbusd exit 0, QEMU $qpid gone"
