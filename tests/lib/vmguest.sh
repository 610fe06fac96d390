# tests/lib/vmguest.sh: a VM guest on this host for the unit tests that boot one
# (vm-doorbell, vm-connector; docs/vm.md). Sourced after `top` is set; it checks what the
# VM needs (skip 77 with the reason), builds an initramfs of a static busybox, INIT, the
# guest driver and PROG, and starts a vbusd with bus "b". The VM's kernel is VBUS_VM_DIR's
# (default build/vm), the driver VBUS_VMGUEST_KO (default build/kernel/vbus_vmguest.ko),
# its RAM VBUS_VMGUEST_MEM (default 128M): tests/vm/kdebug points them at its debug kernel.
#
#   vg_setup PROG INIT   (PROG "-": none) sets kernel, ko, mem (vm add's), guest (the program), tmp, run,
#                        vbusd_pid, fds0, and the functions skip, fail, ctl, fds (vg_field,
#                        vg_ended are defined at once); cleans up
#                        at exit
# Hooks a test may define before vg_setup:
#   vg_populate ROOT     called with the initramfs's root before it is packed (add files;
#                        vg_copy_dynamic copies programs and the libraries they load)
#   VG_VBUSD_ENV         words "K=V ..." put in vbusd's environment (e.g. LD_PRELOAD)
#   VG_KVM_PROBE         vbusd's --kvm-probe file (default VBUS_VM_DIR's kvm-probe, which
#                        vbus-softroce shares: KVM is probed once per host boot, not per test)
#   vg_on_exit           called first at exit (undo what the test set up on this host)
set -u
build=${VBUS_BUILD:-$top/build/default}
b=$build/bin
. "$top/tests/lib/time.sh"	# time limits scale with the machine

skip() { echo "SKIP: $*"; exit 77; }
fail() { echo "FAIL: $*"; [ -n "${run:-}" ] && tail -n 20 "$run/vbusd.log" 2>/dev/null | sed 's/^/  vbusd| /'
	[ -n "${con:-}" ] && tail -n 30 "$con" 2>/dev/null | sed 's/^/  console| /'; exit 1; }
ctl() { "$b/vbusctl" --run-dir "$run" "$@"; }
# vg_field KEY [VM]: VM's (default t1) value of KEY in `vm show -j` (a number, a string or a list)
vg_field() {
	ctl -j vm show "${2:-t1}" | sed -n "s/.*\"$1\":\(\[[^]]*\]\|\"[^\"]*\"\|[-0-9]*\).*/\1/p" | tr -d '"'
}
# vg_ended [VM]: VM (default t1) has ended: QEMU exited or failed (not while it is starting,
# which includes vbusd's KVM probe, or running)
vg_ended() { case $(vg_field state "${1:-t1}") in exited|failed) true ;; *) false ;; esac; }
fds() { ls "/proc/$vbusd_pid/fd" | wc -l; }

vg_cleanup() {
	if declare -F vg_on_exit >/dev/null; then vg_on_exit; fi
	[ -n "${vbusd_pid:-}" ] && kill -TERM "$vbusd_pid" 2>/dev/null && wait "$vbusd_pid"
	rm -rf "${tmp:-/nonexistent}" "${fakedir:-/nonexistent}"
}

# vg_copy_dynamic ROOT FILE...: each FILE at the same path under ROOT, with every library
# ldd says it loads (and the loader): the host is Debian 12 as the VM's kernel is, and
# only libc's ABI matters to a user-space program in the VM.
vg_copy_dynamic() {
	local root=$1 f l
	shift
	for f in "$@"; do
		mkdir -p "$root/$(dirname "$f")" && cp -L "$f" "$root/$f" || return 1
		for l in $(ldd "$f" | grep -o '/[^ ]*'); do
			[ -e "$root/$l" ] && continue
			mkdir -p "$root/$(dirname "$l")" && cp -L "$l" "$root/$l" || return 1
		done
	done
}

# vg_populate_verbs ROOT FILE...: what a VM guest on soft-RoCE needs (tests/device/guest-vm.sh,
# bench/vm-guest): virtio-net's modules in /mod (QEMU's user-mode network), vbus-run and the
# default build's libvbus-verbs.so in /vbus, bash, and each FILE with the libraries it loads
# (a FILE of the default build goes to /vbus/bin, anything else keeps its path).
VG_NET_MODS="virtio/virtio_ring virtio/virtio virtio/virtio_pci_legacy_dev virtio/virtio_pci_modern_dev"
VG_NET_MODS+=" virtio/virtio_pci ../net/core/failover net/net_failover net/virtio_net"
vg_populate_verbs() {
	local root=$1 m f d=$top/build/default
	local mods=${VBUS_VM_DIR:-$top/build/vm}/kernel/current/modules
	shift
	mkdir -p "$root/vbus/bin" "$root/vbus/lib" "$root/usr/bin" "$root/tmp" "$root/mod" || return 1
	for m in $VG_NET_MODS; do
		cp "$mods/kernel/drivers/$m.ko" "$root/mod/" || return 1
	done
	cp "$d/bin/vbus-run" "$root/vbus/bin/" &&
	ln -s /bin/busybox "$root/usr/bin/env" &&
	vg_copy_dynamic "$root" "$(command -v bash)" "$d/lib/libvbus-verbs.so" "$@" &&
	mv "$root/$d/lib/libvbus-verbs.so" "$root/vbus/lib/" || return 1
	for f in "$@"; do
		case $f in "$d"/*) mv "$root/$f" "$root/vbus/bin/" || return 1 ;; esac
	done
	rm -rf "${root:?}/$d"
}

# The end of a VM test. vg_vm_del QPID: `vm del` of t1 leaves no QEMU and no child of
# vbusd. vg_vbusd_end: vbusd has the descriptors it had before the VM (fds0), exits 0 on
# SIGTERM and logged no sanitizer report.
vg_vm_del() {
	ctl vm del t1 || fail "vm del"
	[ ! -e "/proc/$1" ] || fail "QEMU $1 still exists after vm del"
	[ -z "$(ps -o pid= --ppid "$vbusd_pid")" ] || fail "vbusd still has children: $(ps --ppid "$vbusd_pid")"
}
vg_vbusd_end() {
	local rc
	[ "$(fds)" = "$fds0" ] || fail "vbusd had $fds0 descriptors before the VM, $(fds) after: $(ls -l /proc/$vbusd_pid/fd)"
	echo "ok   vm del: no QEMU, no child, $fds0 descriptors as before"
	kill -TERM "$vbusd_pid"
	wait "$vbusd_pid"
	rc=$?
	vbusd_pid=
	if grep -qE "ERROR: AddressSanitizer|runtime error:|WARNING: ThreadSanitizer|LeakSanitizer" "$run/vbusd.log"; then
		grep -E -A40 "ERROR: AddressSanitizer|runtime error:|WARNING: ThreadSanitizer|LeakSanitizer" "$run/vbusd.log" | head -n 120
		fail "a sanitizer report in vbusd's log (exit $rc)"
	fi
	[ $rc = 0 ] || fail "vbusd exited $rc on SIGTERM"
	echo "ok   vbusd: exit 0 on SIGTERM, no sanitizer report"
}

# vg_fake_verbs: vbusd of this variant (VBUS_BUILD) with tests/lib/fake-verbs.c preloaded
# after its sanitizer runtime (one soft-RoCE-like device, fake0, and the module's admin
# descriptor on a plain file), and QEMU through a wrapper that drops vbusd's preloads (they
# are vbusd's only: a sanitizer runtime in QEMU reports QEMU's own leaks and races). Sets
# VG_VBUSD_ENV and fakedir (removed by vg_cleanup); before vg_setup.
vg_fake_verbs() {
	local variant=${VBUS_BUILD:-$top/build/default} rt
	rt=$(ldd "$variant/bin/vbusd" | grep -o '/[^ ]*lib[at]san\.so[^ ]*' | head -n 1)
	[ -f "$variant/tests/lib/libfake-verbs.so" ] || skip "no $variant/tests/lib/libfake-verbs.so (make)"
	fakedir=$(mktemp -d /tmp/vbus-vm-fake.XXXXXX)
	trap vg_cleanup EXIT
	printf '#!/bin/sh\nunset LD_PRELOAD\nexec qemu-system-x86_64 "$@"\n' >"$fakedir/qemu"
	chmod +x "$fakedir/qemu"
	mkdir "$fakedir/uverbs" && : >"$fakedir/admin"
	VG_VBUSD_ENV="LD_PRELOAD=${rt:+$rt:}$variant/tests/lib/libfake-verbs.so VBUS_FAKE_IBDEV=fake0:$fakedir/uverbs VBUS_VRDMA_ADMIN=$fakedir/admin VBUS_QEMU=$fakedir/qemu"
}

vg_setup() { # PROG INIT
	command -v qemu-system-x86_64 >/dev/null || skip "no qemu-system-x86_64 (apt-get install qemu-system-x86)"
	vmdir=${VBUS_VM_DIR:-$top/build/vm}
	[ -f "$vmdir/kernel/current/vmlinuz" ] || skip "no VM kernel in $vmdir/kernel/current (make deps; or set VBUS_VM_DIR)"
	# (its PVH ELF where there is one: tests/vm/boot-image)
	kernel=$("$top/tests/vm/boot-image" "$vmdir/kernel/current") || fail "boot-image $vmdir/kernel/current"
	mem=${VBUS_VMGUEST_MEM:-128M}
	ko=${VBUS_VMGUEST_KO:-$top/build/kernel/vbus_vmguest.ko}
	[ -f "$ko" ] || skip "no $ko (make kernel, with the VM kernel's headers: VBUS_VM_DIR)"
	kver=$(cat "$vmdir/kernel/current/version")
	[ "$(modinfo -F vermagic "$ko" | cut -d' ' -f1)" = "$kver" ] ||
		skip "$ko is not built for the VM kernel $kver"
	# Static, so built in the default variant only (tests/Makefile): the asan run uses it too.
	# PROG: tests/vmguest/PROG, or DIR/PROG under build/default/tests (e.g. guest/vm-pd).
	case $1 in
	-) guest= ;;	# none: vg_populate puts in what the VM runs
	*/*) guest=$top/build/default/tests/$1 ;;
	*) guest=$top/build/default/tests/vmguest/$1 ;;
	esac
	[ -z "$guest" ] || [ -x "$guest" ] || skip "no $guest (make)"
	local busybox
	busybox=$(command -v busybox || echo /bin/busybox)
	[[ $(ldd "$busybox" 2>&1) == *"not a dynamic"* ]] || skip "no static busybox (apt-get install busybox-static)"

	tmp=$(mktemp -d "/tmp/vbus-vm-${2##*/}.XXXXXX")
	run=$tmp/run
	vbusd_pid=
	trap vg_cleanup EXIT

	# The initramfs: busybox, /init, the module, the program; not compressed (the kernel's
	# gunzip is seconds under TCG inside TCG).
	mkdir -p "$tmp/root/bin" "$tmp/root/dev" "$tmp/root/proc" "$tmp/root/sys"
	cp "$busybox" "$tmp/root/bin/busybox"
	cp "$top/tests/vmguest/$2" "$tmp/root/init"
	cp "$ko" ${guest:+"$guest"} "$tmp/root/" || fail "cp $ko $guest"
	if declare -F vg_populate >/dev/null; then vg_populate "$tmp/root" || fail "vg_populate"; fi
	(cd "$tmp/root" && find . | cpio -o -H newc --quiet) >"$tmp/initrd" || fail "cpio"

	mkdir -p "$run"
	# shellcheck disable=SC2086 # VG_VBUSD_ENV is words on purpose
	env ${VG_VBUSD_ENV:-} "$b/vbusd" --run-dir "$run" \
		--kvm-probe "${VG_KVM_PROBE:-$vmdir/kvm-probe}" 2>"$run/vbusd.log" &
	vbusd_pid=$!
	vt_until 5 test -S "$run/ctl.sock" || fail "vbusd did not start"
	ctl bus add b allow all >/dev/null || fail "bus add"
	fds0=$(fds)
}
