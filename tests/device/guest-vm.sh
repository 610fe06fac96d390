#!/bin/bash
# A VM guest on soft-RoCE (issue 17, docs/vm.md): vbusd in this test VM has two vrdma devices
# on its soft-RoCE device, k0 on the kernel backend (the module serves the VM's processes
# through vbusd's foreign attachment over the VM's RAM: docs/vm.md, "The kernel backend for
# VM guests") and r0 on the relay, and starts a VM of its own (QEMU TCG inside TCG: about 70 s to
# boot here, through the kernel's PVH entry: tests/vm/boot-image) on that bus, with QEMU's user-mode network (the VM reaches this one as
# 10.0.2.2), the guest driver, vbus-run, libvbus-verbs.so, Debian's rdma-core and perftest
# binaries and two test programs. In the VM, under vbus-run with no option, against servers
# run here on $VBUS_RXE (natively unless said):
#   - ibv_devinfo -d k0: the port ACTIVE;
#   - tests/guest/trespass on k0: memory that is not the program's (unmapped, past a mapping's
#     end, kernel addresses, other PDs' keys, pages beside an MR) through ibv_reg_mr, SGEs
#     and RDMA addresses: every attempt fails and nothing changes; the same program natively
#     (the control) and as a process guest here first;
#   - ibv_rc_pingpong -c and -c -e on k0 (completions through a completion channel: a
#     vector's interrupt, which the module signals): ITERS round trips, the buffers checked;
#   - ib_write_lat, ib_read_lat, ib_write_bw on k0, ib_send_lat on r0 (ib_write_lat on r0
#     too until stop 38: bench/vm-guest compares the places): ITERS iterations each;
#     ib_write_lat's
#     t_typical is printed beside this VM's native and process-guest figures (a figure, not
#     a limit); a perftest whose clock calibration fails under TCG (bench/lib/perftest.sh)
#     still has to exit and give its server a clean end;
#   - tests/guest/integrity (every byte of RC, UC and UD traffic checked) on k0 against a
#     native server, then on r0 against a process guest here;
#   - tests/guest/port-events on k0 (the module's events, forwarded by vbusd): $VBUS_NETDEV is taken down and up here while it waits in
#     ibv_get_async_event: IBV_EVENT_PORT_ERR then PORT_ACTIVE, ibv_query_port following;
#   - the inner guest kernel logs no warning or oops;
#   - then the VM is killed (SIGKILL to QEMU; VBUS_VM_END=poweroff: it powers off from
#     inside with `poweroff -f`, guest-vm-poweroff.sh) under a last integrity run on k0, once
#     `vbusctl -j guest show` says its connection is served by the kernel backend and
#     vbusd has rung the module's doorbell for it, while a process
#     guest here runs integrity of its own: that guest passes, vbusd shows the VM exited,
#     its connection goes, every real object is released (`rdma res show` at its count
#     before the VM), and `vm del` leaves no QEMU and no child.
# One VM, one boot: everything that needs a VM guest on a real device is in this one test.
# timeout: 900
# backends: relay
set -u
top=${VBUS_TOP:?}
dflt=$top/build/default
ITERS=${VBUS_VMGUEST_ITERS:-100}
# How the VM ends under its last traffic: kill (SIGKILL to QEMU) or poweroff (`poweroff -f`
# inside it, once this side is ready: tests/device/guest-vm-poweroff.sh, make soak).
END=${VBUS_VM_END:-kill}
case $END in kill|poweroff) ;; *) echo "FAIL: VBUS_VM_END is kill or poweroff, not '$END'"; exit 1 ;; esac
CLIENTS="ibv_devinfo ibv_rc_pingpong ib_write_lat ib_send_lat ib_read_lat ib_write_bw"
for p in $CLIENTS bash rdma; do
	command -v $p >/dev/null || { echo "SKIP: no $p (make deps)"; exit 77; }
done
for p in lib/libvbus-verbs.so tests/guest/trespass tests/guest/integrity tests/guest/port-events; do
	[ -f "$dflt/$p" ] || { echo "SKIP: no $dflt/$p (make)"; exit 77; }
done
tr=$dflt/tests/guest/trespass
ig=$dflt/tests/guest/integrity
pe=$dflt/tests/guest/port-events
seed=${VBUS_IG_SEED:-$(( (RANDOM << 16) | RANDOM ))}
# shellcheck disable=SC2046 # one word per client
vg_populate() { # ROOT: the parameters, the clients and the two test programs
	printf 'GID=%s\nPORT=%s\nITERS=%s\nSEED=%s\nSCALE=%s\nEND=%s\n' "$VBUS_GID_INDEX" "$port" "$ITERS" \
		"$seed" "$(awk -v s="${VBUS_TIME_SCALE:-3}" 'BEGIN { print s * 3 }')" "$END" >"$1/params"
	vg_populate_verbs "$1" $(for m in $CLIENTS; do command -v $m; done) "$tr" "$ig" "$pe"
}
port=$((20000 + RANDOM % 20000))	# the VM's servers: port .. port+9; here: port+10 ..
. "$top/tests/lib/vmguest.sh"
. "$top/bench/lib/perftest.sh"
. "$top/tests/lib/vbusd.sh"	# vd_res_counts, vd_res_is
vg_setup - init-rxe
# k0: the kernel backend when the module is loaded (tests/vm/run loads this build's).
kb=kernel
[ -d /sys/module/vbus_vrdma ] ||
	{ kb=relay; echo "info SKIPPED PART: no vbus_vrdma module here: k0 is a relay device too, the kernel backend for VMs is not tested"; }
ctl dev add k0 class vrdma backing="$VBUS_RXE" port=1 gid="$VBUS_GID_INDEX" backend=$kb bus b \
	>/dev/null || fail "dev add k0 (backend=$kb) on $VBUS_RXE"
ctl dev add r0 class vrdma backing="$VBUS_RXE" port=1 gid="$VBUS_GID_INDEX" backend=relay bus b \
	>/dev/null || fail "dev add r0 on $VBUS_RXE"
base=$(vd_res_counts)
srv=$tmp/srv
mkdir -p "$srv"
guest=("$dflt/bin/vbus-run" --run-dir "$run" --bus b --)

# The trespasser natively (the control: the device itself refuses) and as a process guest.
for w in native guest; do
	if [ $w = native ]; then cmd=("$tr" "$VBUS_RXE"); else cmd=("${guest[@]}" "$tr" r0); fi
	timeout -k 5 "$(vt_secs 120)" "${cmd[@]}" "$VBUS_GID_INDEX" >"$srv/tr-$w" 2>&1 &&
		grep -q TRESPASS-OK "$srv/tr-$w" || fail "trespass, $w here: $(cat "$srv/tr-$w")"
	echo "ok   trespass $w here: $(grep -c '^ok' "$srv/tr-$w") attempts refused, a good WRITE after them"
done

# ib_write_lat natively and from a process guest here, for scale (this VM's figures), before
# anything else runs.
PT_TIMEOUT=$(vt_secs 300)
PT_PORT=$((port + 10))
lat_of() { awk '$1 == 2 && NF >= 5 { print $5; exit }'; }
pt_run_once ib_write_lat "$srv/native" -n "$ITERS" -F || fail "ib_write_lat natively here"
PT_CLIENT_WRAP=("${guest[@]}") PT_CLIENT_DEV=r0
pt_run_once ib_write_lat "$srv/process" -n "$ITERS" -F || fail "ib_write_lat from a process guest here"

# The servers for the inner VM's clients, one port each, in init-rxe's order (one client
# at a time: a VM has one process on the bus at a time). Each exits after its client.
lim=$(vt_secs 1500)
declare -A spid
serve() { # TAG PORT-OFFSET CMD...: a server in the background, its output in $srv/TAG
	local t=$1 o=$2
	shift 2
	timeout -k 5 "$lim" "$@" -p $((port + o)) >"$srv/$t" 2>&1 &
	spid[$t]=$!
	pt_wait_listen $((port + o)) "${spid[$t]}" || fail "the $t server did not listen: $(cat "$srv/$t")"
}
pp=(ibv_rc_pingpong -d "$VBUS_RXE" -g "$VBUS_GID_INDEX" -n "$ITERS" -c)
pt() { echo "$1" -d "$VBUS_RXE" -x "$VBUS_GID_INDEX" -n "$ITERS" -F; }
igs=(-g "$VBUS_GID_INDEX" -W 1400)
serve PP 0 "${pp[@]}"
serve PPE 1 "${pp[@]}" -e
# shellcheck disable=SC2046 # pt's words
{ serve LAT 2 $(pt ib_write_lat); serve SLAT 3 $(pt ib_send_lat)
  serve RLAT 4 $(pt ib_read_lat)
  serve BW 5 $(pt ib_write_bw); }
# The integrity clients connect before their set-up, which runs in the inner VM (TCG inside
# TCG) with the other client beside it: the servers wait for them three times as long as
# the clients' own waits (SCALE in vg_populate), which are three times this VM's.
igscale=$(awk -v s="${VBUS_TIME_SCALE:-3}" 'BEGIN { print s * 9 }')
serve IGN 6 env VBUS_TIME_SCALE="$igscale" "$ig" -d "$VBUS_RXE" "${igs[@]}"
serve IGG 7 env VBUS_TIME_SCALE="$igscale" "${guest[@]}" "$ig" -d r0 "${igs[@]}"
serve VICTIM 8 "$ig" -d "$VBUS_RXE" "${igs[@]}"

t0=$(date +%s)
ctl vm add t1 bus b kernel "$kernel" initrd "$tmp/initrd" mem 512M cpus 1 net user accel tcg \
	append "console=ttyS0 loglevel=4 panic=-1 cryptomgr.notests" || fail "vm add"
con=$run/vm/t1.console
up() { grep -qs "VBUS-VM up\|VBUS-VM-RXE-FAIL\|VBUS-VM-RXE-EXIT" "$con" || vg_ended; }
vt_until 300 up || fail "the inner VM did not come up in $(vt_secs 300) s (state $(vg_field state))"
grep -q "VBUS-VM up" "$con" || fail "the inner VM: $(grep 'VBUS-VM-RXE-FAIL' "$con") (state $(vg_field state) $(vg_field why))"
echo "ok   the inner VM is up after $(($(date +%s) - t0)) s (TCG inside TCG), network and driver loaded"
# Where the boot's time goes: before the kernel counts (QEMU, firmware, decompression) and
# the kernel's own until /init, for an initramfs of this size.
echo "info inner VM: /init at its uptime $(tr -d '\r' <"$con" | sed -n 's/^VBUS-VM init at uptime \([0-9.]*\) s$/\1/p') s; initramfs $(($(stat -c %s "$tmp/initrd") >> 20)) MiB"
done_() { grep -qs "VBUS-VM-RXE-EXIT" "$con" || vg_ended; }
# Port events in the VM: rxe0's netdev down and up once port-events there is ready.
pe_ready() { grep -qs "^VBUS-PE-READY" "$con" || done_; }
vg_on_exit() { ip link set "$VBUS_NETDEV" up; }
vt_until 600 pe_ready || fail "the inner VM did not get to port-events"
if ! done_; then
	ip link set "$VBUS_NETDEV" down
	sleep 1
	ip link set "$VBUS_NETDEV" up
	vt_until 10 vd_rxe_active || fail "$VBUS_RXE did not come back after its link went down and up"
fi
vt_until 600 done_ || fail "the clients in the inner VM did not end"
echo "info the inner VM's clients took $(($(date +%s) - t0)) s since vm add"
out() { tr -d '\r' <"$con" | sed -n "s/^$1|//p"; }	# TAG: its lines of the console
rc() { tr -d '\r' <"$con" | sed -n "s/^$1-RC //p"; }
echo "info the inner VM's uptime (s) as each client started: $(tr -d '\r' <"$con" | sed -n 's/^VBUS-\([A-Z]*\)-AT /\1 /p' | paste -sd,)"

[ "$(rc VBUS-DI)" = 0 ] && out VBUS-DI | grep -q "state:.*PORT_ACTIVE" ||
	fail "ibv_devinfo -d r0 in the inner VM: $(out VBUS-DI)"
echo "ok   ibv_devinfo -d k0 in the inner VM: port ACTIVE"
[ "$(rc VBUS-TR)" = 0 ] && out VBUS-TR | grep -q TRESPASS-OK || fail "trespass in the inner VM: $(out VBUS-TR)"
# How each attempt failed, where the VM differs from the device itself (for the log).
diff <(grep '^ok' "$srv/tr-native") <(out VBUS-TR | grep '^ok') | sed -n 's/^</info trespass native:/p; s/^>/info trespass VM:    /p'
diff <(grep '^ok' "$srv/tr-native") <(grep '^ok' "$srv/tr-guest") | sed -n 's/^>/info trespass process guest:/p'
echo "ok   trespass in the inner VM: $(out VBUS-TR | grep -c '^ok') attempts refused, a good WRITE after them"
# checked TAG WHAT: the client TAG in the VM and its server here both ended well.
checked() {
	local s
	wait "${spid[$1]}"
	s=$?
	[ "$(rc "VBUS-$1")" = 0 ] && [ $s = 0 ] && return 0
	# perftest's clock calibration failed under TCG (bench/lib/perftest.sh): no figure, but
	# the traffic ran and both ends exited by themselves.
	out "VBUS-$1" | grep -q 'Correlation coefficient' && [ $s = 0 ] && [ -n "$(rc "VBUS-$1")" ] &&
		{ echo "info $2: perftest's clock calibration failed under TCG in the VM: no figure"; return 0; }
	fail "$2, client in the inner VM (exit $(rc "VBUS-$1")), server here (exit $s): $(out "VBUS-$1" | tail -n 30) | $(tail -n 8 "$srv/$1")"
}
checked PP "ibv_rc_pingpong -c"
checked PPE "ibv_rc_pingpong -c -e"
for t in PP PPE; do
	out "VBUS-$t" | grep -q "^$ITERS iters in" || fail "$t: no '$ITERS iters in' line: $(out "VBUS-$t")"
done
echo "ok   ibv_rc_pingpong -c and -c -e from the inner VM: $(out VBUS-PP | grep -m1 'iters in'); $(out VBUS-PPE | grep -m1 'iters in')"
checked LAT "ib_write_lat on k0"
checked SLAT ib_send_lat
checked RLAT ib_read_lat
checked BW ib_write_bw
echo "ok   from the inner VM, 2 B t_typical: ib_send_lat (r0, relay) $(out VBUS-SLAT | lat_of) us, ib_read_lat $(out VBUS-RLAT | lat_of) us; ib_write_bw 64 KiB: $(out VBUS-BW | awk '$1 == 65536 { print "peak " $3 ", average " $4 " MB/s"; exit }') (perftest's clock under TCG)"
echo "ok   ib_write_lat 2 B t_typical: native $(lat_of <"$srv/native") us, process guest (r0, relay) $(lat_of <"$srv/process") us, VM guest (TCG inside TCG) on k0 ($kb) $(out VBUS-LAT | lat_of) us (bench/vm-guest compares the places)"
for t in IGN:"k0 against a native server" IGG:"r0 against a process guest's server"; do
	checked "${t%%:*}" "integrity on ${t#*:}"
	echo "ok   integrity from the inner VM on ${t#*:} here: $(out "VBUS-${t%%:*}" | grep 'rounds in' | tr '\n' ' ')"
done
n=$(grep -c "guest [0-9]* connected (VM, QEMU pid $(vg_field pid)" "$run/vbusd.log")
echo "info $n connections made for the VM (one per process)"

[ "$(rc VBUS-PE)" = 0 ] && out VBUS-PE | grep -q "^ok   IBV_EVENT_PORT_ERR" &&
	out VBUS-PE | grep -q "^ok   IBV_EVENT_PORT_ACTIVE" ||
	fail "port events in the inner VM (rxe0's link down and up here): $(out VBUS-PE)"
echo "ok   rxe0's link down and up here: the inner VM's process got $(out VBUS-PE | grep '^ok' | cut -c6- | paste -sd ';')"

out VBUS-DMESG >"$tmp/dmesg"
if grep -E "WARNING:|BUG:|Oops|general protection|possible circular locking|inconsistent lock state|Call Trace" "$tmp/dmesg"; then
	fail "the inner guest kernel logged a warning or an oops"
fi
echo "ok   the inner guest kernel: no warning or oops"

# The VM killed under traffic: its last integrity client against the VICTIM server, while a
# process guest here runs integrity against a native server of its own.
vpid=$(pgrep -P "${spid[VICTIM]}" -x integrity) || fail "no integrity server under timeout ${spid[VICTIM]}"
victim_qps() { rdma res show qp 2>/dev/null | grep "state RTS" | grep -c " pid $vpid "; }
vt_until 120 eval '[ "$(victim_qps)" -ge 6 ]' ||
	fail "the VM's last integrity run did not start: $(victim_qps) QPs of its server in RTS"
# Its connection is served by the module: vbusd's foreign attachment, its doorbells rung,
# drained by the module in QEMU's writing thread (VBK_IOC_DOORBELL_FD), not on a worker.
if [ "$kb" = kernel ]; then
	rung() { # the k0 connection's doorbells rung, once its first round is posted
		js=$(ctl -j guest show)
		db=$(grep -o '"backend":"kernel"[^{}]*"quota_hits":{[^{}]*}[^{}]*"vm":{"doorbell":"module","doorbells":[0-9]*' <<<"$js" |
			grep -o '[0-9]*$' | sort -n | tail -n 1)
		[ "${db:-0}" -gt 0 ]
	}
	vt_until 60 rung ||
		fail "the VM's k0 connection is not served by the kernel backend (no doorbells drained by the module): $js"
	wqes() { grep -o '"wqes":[0-9]*' <<<"$js" | sort -t: -k2 -n | tail -n 1 | cut -d: -f2; }
	w0=$(wqes) d0=$db
	# and its traffic goes on through the module: more WQEs posted, the QPs still in RTS
	more() { rung && [ "$(wqes)" -gt $((w0 + 100)) ]; }
	vt_until 60 more ||
		fail "the VM's integrity run on k0 stalled: $(wqes) WQEs posted by the module, $w0 before; $(victim_qps) QPs of its server in RTS; the server: $(tail -n 5 "$srv/VICTIM"); $js"
	ow=$(grep -o '"vm":{"doorbell":"module","doorbells":[0-9]*,"doorbells_on_worker":[0-9]*' <<<"$js" | grep -o '[0-9]*$' | sort -n | tail -n 1)
	echo "ok   the VM's integrity run on k0 is served by the kernel backend: $d0 then $db doorbells drained by the module in QEMU's thread (${ow:-?} on its worker), $w0 then $(wqes) WQEs posted by the module"
fi
[ "$(victim_qps)" -ge 6 ] ||
	fail "the VM's last integrity run is not running: $(victim_qps) QPs of its server in RTS; the server: $(tail -n 5 "$srv/VICTIM")"
serve OTHER 11 "$ig" -d "$VBUS_RXE" "${igs[@]}"
timeout -k 5 "$(vt_secs 300)" "${guest[@]}" "$ig" -d r0 -g "$VBUS_GID_INDEX" -s "$seed" -n 2 -A 20 \
	-T 6 -p $((port + 11)) "$VBUS_IP" >"$srv/other-client" 2>&1 &
other=$!
sleep 2
qpid=$(vg_field pid)
if [ "$END" = kill ]; then
	kill -KILL "$qpid" || fail "kill QEMU $qpid"
	echo "ok   QEMU killed under the VM's integrity traffic ($(victim_qps) QPs of its server in RTS)"
else
	# The VM polls PORT + 12 (QEMU's user network: this VM is 10.0.2.2) and powers off
	# from inside at once when something listens there.
	n0=$(victim_qps)
	timeout -k 5 "$(vt_secs 120)" busybox nc -l -p $((port + 12)) -e /bin/true &
	nc=$!
	vt_until 120 eval '[ "$(vg_field state)" = exited ]' ||
		fail "the VM did not power off from inside: state $(vg_field state); $(tr -d '\r' <"$con" | tail -n 5)"
	grep -q "VBUS-POWEROFF under traffic" "$con" || fail "the VM ended without powering off: $(tr -d '\r' <"$con" | tail -n 5)"
	wait "$nc" || fail "the listener the VM powers off on: exit $?"
	[ "$(vg_field exit)" = 0 ] || fail "QEMU exited $(vg_field exit) at the VM's poweroff: $(vg_field why)"
	echo "ok   the VM powered off from inside (poweroff -f) under its integrity traffic ($n0 QPs of its server in RTS): QEMU exited 0"
fi
wait "$other"
s=$?
wait "${spid[OTHER]}"
s2=$?
[ $s = 0 ] && [ $s2 = 0 ] || fail "the process guest's integrity run across the kill: $(tail -n 5 "$srv/other-client") | $(tail -n 5 "$srv/OTHER")"
echo "ok   a process guest's integrity run across the VM's end ($END): $(grep 'rounds in' "$srv/other-client")"
exited() { [ "$(vg_field state)" = exited ]; }
vt_until 30 exited || fail "vbusd does not show the VM exited: state $(vg_field state)"
guests_gone() { [ "$(ctl -j guest show)" = "[]" ]; }
vt_until 30 guests_gone || fail "the killed VM's connection outlived it: $(ctl -j guest show)"
kill "${spid[VICTIM]}" 2>/dev/null
wait "${spid[VICTIM]}"
vt_until 30 vd_res_is "$base" || fail "real objects left after the kill: $(vd_res_counts) (qp cq mr pd cm_id), $base before the VM: $(rdma res show qp)"
echo "ok   the VM ended ($END): state exited, its connection gone, rdma res show at its count before the VM ($base)"
vg_vm_del "$qpid"
echo "ok   vm del: no QEMU, no child"
