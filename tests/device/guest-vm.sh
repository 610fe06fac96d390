#!/bin/bash
# A VM guest on soft-RoCE (issue 17, docs/vm.md): vbusd in this test VM has a vrdma device r0
# on its soft-RoCE device and starts a VM of its own (QEMU TCG inside TCG: about 100 s to
# boot here) on that bus, with QEMU's user-mode network (the VM reaches this one as
# 10.0.2.2), the guest driver, vbus-run, libvbus-verbs.so and Debian's rdma-core and
# perftest binaries. In the VM, under vbus-run with no option, against servers run natively
# here on $VBUS_RXE:
#   - ibv_devinfo -d r0: the port ACTIVE (served by the relay: a VM takes no descriptor);
#   - ibv_rc_pingpong -c: ITERS round trips, the received buffers checked: rings in pages
#     the driver pinned, the doorbell a vector, MRs on the program's own pages;
#   - the same with -e: completions through a completion channel (a vector's interrupt);
#   - ib_write_lat: ITERS iterations; its t_typical is printed beside this VM's native and
#     process-guest figures of the same run (a figure, not a limit);
#   - the inner guest kernel logs no warning or oops; vbusd's guest is gone once the VM is
#     deleted, and `vm del` leaves no QEMU and no child.
# One VM, one boot: everything that needs a VM guest on a real device is in this one test.
# timeout: 500
# backends: relay
set -u
top=${VBUS_TOP:?}
dflt=$top/build/default
ITERS=${VBUS_VMGUEST_ITERS:-100}
for p in ibv_devinfo ibv_rc_pingpong ib_write_lat bash; do
	command -v $p >/dev/null || { echo "SKIP: no $p (make deps)"; exit 77; }
done
[ -f "$dflt/lib/libvbus-verbs.so" ] || { echo "SKIP: no $dflt/lib/libvbus-verbs.so (make)"; exit 77; }
mods=${VBUS_VM_DIR:-$top/build/vm}/kernel/current/modules
NET_MODS="virtio/virtio_ring virtio/virtio virtio/virtio_pci_legacy_dev virtio/virtio_pci_modern_dev virtio/virtio_pci"
NET_MODS+=" ../net/core/failover net/net_failover net/virtio_net"

vg_populate() { # ROOT: network modules, the verbs library, vbus-run, bash, the clients
	local root=$1 m
	mkdir -p "$root/vbus/bin" "$root/vbus/lib" "$root/usr/bin" "$root/tmp" "$root/mod" || return 1
	for m in $NET_MODS; do
		cp "$mods/kernel/drivers/$m.ko" "$root/mod/" || return 1
	done
	printf 'GID=%s\nPORT_PP=%s\nPORT_PPE=%s\nPORT_LAT=%s\nITERS=%s\n' "$VBUS_GID_INDEX" \
		"$port_pp" "$((port_pp + 1))" "$((port_pp + 2))" "$ITERS" >"$root/params"
	cp "$dflt/bin/vbus-run" "$root/vbus/bin/" &&
	ln -s /bin/busybox "$root/usr/bin/env" &&
	vg_copy_dynamic "$root" "$(command -v bash)" "$(command -v ibv_devinfo)" \
		"$(command -v ibv_rc_pingpong)" "$(command -v ib_write_lat)" "$dflt/lib/libvbus-verbs.so" &&
	mv "$root/$dflt/lib/libvbus-verbs.so" "$root/vbus/lib/" &&
	rm -rf "${root:?}/$dflt"
}
port_pp=$((20000 + RANDOM % 20000))
. "$top/tests/lib/vmguest.sh"
. "$top/bench/lib/perftest.sh"
vg_setup - init-rxe
ctl dev add r0 class vrdma backing="$VBUS_RXE" port=1 gid="$VBUS_GID_INDEX" bus b >/dev/null ||
	fail "dev add r0 on $VBUS_RXE"

# The servers, native on this VM's device, wait for the inner VM's clients (one at a time:
# a VM has one process on the bus at a time). Each exits after its client.
srv=$tmp/srv
mkdir -p "$srv"
lim=$(vt_secs 1500)
timeout -k 5 "$lim" ibv_rc_pingpong -d "$VBUS_RXE" -g "$VBUS_GID_INDEX" -p "$port_pp" -n "$ITERS" -c \
	>"$srv/pp" 2>&1 &
pp=$!
timeout -k 5 "$lim" ibv_rc_pingpong -d "$VBUS_RXE" -g "$VBUS_GID_INDEX" -p $((port_pp + 1)) -n "$ITERS" \
	-c -e >"$srv/ppe" 2>&1 &
ppe=$!
timeout -k 5 "$lim" ib_write_lat -d "$VBUS_RXE" -x "$VBUS_GID_INDEX" -p $((port_pp + 2)) -n "$ITERS" -F \
	>"$srv/lat" 2>&1 &
lat=$!
for p in "$port_pp" $((port_pp + 1)) $((port_pp + 2)); do
	pt_wait_listen "$p" $$ || fail "a server did not listen on port $p: $(cat "$srv"/*)"
done

t0=$(date +%s)
ctl vm add t1 bus b kernel "$kernel" initrd "$tmp/initrd" mem 512M cpus 1 net user accel tcg \
	append "console=ttyS0 loglevel=4 panic=-1" || fail "vm add"
con=$run/vm/t1.console
field() { # KEY: VM t1's value of KEY in `vm show -j`
	ctl -j vm show t1 | sed -n "s/.*\"$1\":\(\[[^]]*\]\|\"[^\"]*\"\|[-0-9]*\).*/\1/p" | tr -d '"'
}
up() { grep -qs "VBUS-VM up\|VBUS-VM-RXE-FAIL\|VBUS-VM-RXE-EXIT" "$con" || [ "$(field state)" != running ]; }
vt_until 300 up || fail "the inner VM did not come up in $(vt_secs 300) s (state $(field state))"
grep -q "VBUS-VM up" "$con" || fail "the inner VM: $(grep 'VBUS-VM-RXE-FAIL' "$con") (state $(field state) $(field why))"
echo "ok   the inner VM is up after $(($(date +%s) - t0)) s (TCG inside TCG), network and driver loaded"
done_() { grep -qs "VBUS-VM-RXE-EXIT" "$con" || [ "$(field state)" != running ]; }
vt_until 300 done_ || fail "the clients in the inner VM did not end"
out() { tr -d '\r' <"$con" | sed -n "s/^$1|//p"; }	# TAG: its lines of the console
rc() { tr -d '\r' <"$con" | sed -n "s/^$1-RC //p"; }

[ "$(rc VBUS-DI)" = 0 ] && out VBUS-DI | grep -q "state:.*PORT_ACTIVE" ||
	fail "ibv_devinfo -d r0 in the inner VM: $(out VBUS-DI)"
echo "ok   ibv_devinfo -d r0 in the inner VM: port ACTIVE"
for t in PP:pp:"" PPE:ppe:" -e"; do
	IFS=: read -r tag pid_var mode <<<"$t"
	wait "${!pid_var}"
	s=$?
	[ "$(rc VBUS-$tag)" = 0 ] && out "VBUS-$tag" | grep -q "^$ITERS iters in" && [ $s = 0 ] ||
		fail "ibv_rc_pingpong -c$mode, client in the inner VM (exit $(rc VBUS-$tag)), server here (exit $s): $(out "VBUS-$tag" | tail -n 5) | $(tail -n 5 "$srv/$pid_var")"
	echo "ok   ibv_rc_pingpong -c$mode from the inner VM: $(out "VBUS-$tag" | grep -m1 'iters in')"
done
wait "$lat"
s=$?
[ "$(rc VBUS-LAT)" = 0 ] && [ $s = 0 ] ||
	fail "ib_write_lat, client in the inner VM (exit $(rc VBUS-LAT)), server here (exit $s): $(out VBUS-LAT | tail -n 8) | $(tail -n 8 "$srv/lat")"
vm_lat=$(out VBUS-LAT | awk '$1 == 2 && NF >= 5 { print $5; exit }')
[ -n "$vm_lat" ] || fail "no t_typical in ib_write_lat's output: $(out VBUS-LAT)"

# The same client natively and as a process guest here, for scale (this VM's figures).
PT_TIMEOUT=$(vt_secs 300)
PT_PORT=$((port_pp + 3))
lat_of() { awk '$1 == 2 && NF >= 5 { print $5; exit }' "$1"; }
pt_run_once ib_write_lat "$srv/native" -n "$ITERS" -F || fail "ib_write_lat natively here"
PT_CLIENT_WRAP=("$dflt/bin/vbus-run" --run-dir "$run" --bus b --) PT_CLIENT_DEV=r0
pt_run_once ib_write_lat "$srv/process" -n "$ITERS" -F || fail "ib_write_lat from a process guest here"
echo "ok   ib_write_lat 2 B t_typical: native $(lat_of "$srv/native") us, process guest $(lat_of "$srv/process") us, VM guest (TCG inside TCG) $vm_lat us"

out VBUS-DMESG >"$tmp/dmesg"
if grep -E "WARNING:|BUG:|Oops|general protection|possible circular locking|inconsistent lock state|Call Trace" "$tmp/dmesg"; then
	fail "the inner guest kernel logged a warning or an oops"
fi
echo "ok   the inner guest kernel: no warning or oops"
guests_gone() { [ "$(ctl -j guest show)" = "[]" ]; }
qpid=$(field pid)
vg_vm_del "$qpid"
vt_until 30 guests_gone || fail "the VM's connections outlived it: $(ctl -j guest show)"
echo "ok   vm del: no QEMU, no child; the VM's connections gone"
