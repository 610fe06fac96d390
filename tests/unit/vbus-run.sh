#!/bin/bash
# vbus-run's command line, on this host (no RDMA device needed): --help, bad input, programs
# that cannot be interposed (static, setuid), and a program whose bus is not there: one
# line saying why, and an empty device list rather than a crash.
b=${VBUS_BUILD:-build/default}
fail=0
expect() { # WANT_RC WHAT CMD...
	local want=$1 what=$2 rc
	shift 2
	last=$("$@" 2>&1); rc=$?
	if [ "$rc" != "$want" ]; then echo "FAIL $what: exit $rc, wanted $want: $last"; fail=1
	else echo "ok   $what (exit $rc)"; fi
}
run=$b/bin/vbus-run
[ -x "$run" ] && [ -f "$b/lib/libvbus-verbs.so" ] || { echo "FAIL: vbus-run or libvbus-verbs.so not built"; exit 1; }
expect 0 "vbus-run --help" "$run" --help
grep -q -- '--bus' <<<"$last" || { echo "FAIL: --help lacks --bus"; fail=1; }
expect 2 "no command" "$run"
expect 2 "unknown option" "$run" --bogus -- true
expect 2 "command not found" "$run" -- no-such-command-here
if [ -x /bin/busybox ] && ! readelf -l /bin/busybox | grep -q interpreter; then
	expect 2 "a static program" "$run" -- /bin/busybox true
	grep -q "statically linked" <<<"$last" || { echo "FAIL: no reason given: $last"; fail=1; }
fi
expect 2 "a setuid program" "$run" -- /usr/bin/passwd --help
grep -q "setuid" <<<"$last" || { echo "FAIL: no reason given: $last"; fail=1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
if command -v ibv_devices >/dev/null; then
	expect 0 "ibv_devices with no vbusd" "$run" --run-dir "$tmp" --bus nobus -- ibv_devices
	grep -q "cannot attach to bus 'nobus'" <<<"$last" ||
		{ echo "FAIL: no one-line reason: $last"; fail=1; }
	expect 0 "the library exports only ibv_*, rdma_*, the aligned allocation functions and vbus_verbs_* (nesting)" sh -c \
		"nm -D --defined-only '$b/lib/libvbus-verbs.so' | awk '{print \$3}' | grep -v -E '^_?ibv_|^rdma_|^vbus_verbs_(query_limits|query_whitelist|shm_add|shm_forget|open_label|child|child2)$|^(memalign|posix_memalign|aligned_alloc|valloc|pvalloc|free|realloc|malloc_usable_size)$' | grep -q . && exit 1 || exit 0"
	# Every libibverbs function that perftest and the pingpong examples import is either
	# defined by the library or known to be safe on vbus objects (shared/notes/interposer.md).
	safe=" ibv_get_device_name ibv_ack_cq_events ibv_ack_async_event ibv_wc_status_str ibv_create_ah_from_wc ibv_fork_init ibv_event_type_str ibv_node_type_str ibv_port_state_str ibv_get_pkey_index ibv_read_sysfs_file "
	ours=" $(nm -D --defined-only "$b/lib/libvbus-verbs.so" | awk '{print $3}' | tr '\n' ' ') "
	missing=
	for t in ib_write_lat ib_send_lat ib_read_lat ib_write_bw ib_send_bw ib_read_bw ib_atomic_lat \
		 ibv_rc_pingpong ibv_uc_pingpong ibv_devinfo ibv_devices; do
		p=$(command -v $t) || continue
		for f in $(objdump -T "$p" | awk '/\*UND\*/ && $NF ~ /^_?ibv_/ {print $NF}'); do
			[[ $ours == *" $f "* || $safe == *" $f "* ]] || missing="$missing $t:$f"
		done
	done
	[ -z "$missing" ] && echo "ok   every ibv_* import of perftest, the pingpongs and ibv_devinfo is covered" ||
		{ echo "FAIL not interposed:$missing"; fail=1; }
	# Every librdmacm function that rping, the rdma_cm examples and perftest import is
	# defined by the library or only reads public structures (docs/rdma-cm.md, Coverage):
	# the real librdmacm must never get a vbus CM ID.
	safe=" rdma_event_str rdma_get_src_port rdma_get_dst_port rdma_getaddrinfo rdma_freeaddrinfo "
	missing=
	for t in rping ucmatose udaddy rdma_server rdma_client ib_write_lat ib_send_bw ib_read_lat; do
		p=$(command -v $t) || continue
		for f in $(objdump -T "$p" | awk '/\*UND\*/ && $NF ~ /^rdma_/ {print $NF}'); do
			[[ $ours == *" $f "* || $safe == *" $f "* ]] || missing="$missing $t:$f"
		done
	done
	[ -z "$missing" ] && echo "ok   every rdma_* import of rping, the rdma_cm examples and perftest is covered" ||
		{ echo "FAIL rdma_* not interposed:$missing"; fail=1; }
else
	echo "ibv_devices missing (make deps installs ibverbs-utils)"; fail=1
fi
exit $fail
