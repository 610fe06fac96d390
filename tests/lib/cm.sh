# shellcheck shell=bash disable=SC2034
# tests/lib/cm.sh: what the rdma_cm device tests share (guest-rping, guest-cm-ep,
# guest-udaddy; docs/rdma-cm.md). Source after tests/lib/vbusd.sh and vd_start.
#   cm_setup PROGRAM            skips (77) without PROGRAM or a soft-RoCE address; CM_BASE
#                               (cm_base before vbusd starts), then vd_start (exit 1 if not)
#   cm_base                     the lines of `rdma res show cm_id` now (call before vd_start)
#   cm_listening PORT           a CM ID listens on PORT, in anyone's name (vbusd's for a guest)
#   cm_bound PORT               a CM ID is bound to PORT (a UD server does not listen)
#   cm_pair CLIENT SERVER READY SERVER-CMD... -- CLIENT-CMD...
#                               CLIENT and SERVER are "guest" (under vbus-run) or "native";
#                               starts the server, waits (15 s, scaled) until `READY` (a
#                               command) holds, runs the client; outputs in $CM_TMP/server and
#                               $CM_TMP/client, exit statuses in CM_CRC and CM_SRC. Returns 1
#                               when the server never got ready (said, and CM_FAIL=1);
#                               CM_ON_READY, if set, is run once the server is ready
#   cm_ids_back BASE            `rdma res show cm_id` is back to BASE lines (10 s, scaled):
#                               says ok or FAIL (CM_FAIL=1)
#   cm_end                      vbusd's log when something failed; exits with CM_FAIL
CM_FAIL=0
CM_TMP=$(mktemp -d)

cm_base() { rdma res show cm_id 2>/dev/null | wc -l; }

cm_setup() {
	command -v "$1" >/dev/null ||
		{ echo "SKIP: $1 (rdmacm-utils) is not installed: make deps"; exit 77; }
	[ -n "${VBUS_IP:-}" ] ||
		{ echo "SKIP: no soft-RoCE address (VBUS_IP): run under tests/vm/run"; exit 77; }
	CM_BASE=$(cm_base)
	vd_start t vrdma0 || exit 1
}
cm_listening() { rdma res show cm_id 2>/dev/null | grep "LISTEN" | grep -q ":$1 "; }
cm_bound() { rdma res show cm_id 2>/dev/null | grep -q ":$1 "; }

cm_wrap() { [ "$1" = guest ] && echo "${VD_RUN[*]}"; }

cm_pair() {
	local c=$1 s=$2 ready=$3 scmd=() spid
	shift 3
	while [ $# -gt 0 ] && [ "$1" != -- ]; do scmd+=("$1"); shift; done
	shift
	# shellcheck disable=SC2046
	vd_bounded 60 $(cm_wrap "$s") "${scmd[@]}" >"$CM_TMP/server" 2>&1 &
	spid=$!
	# shellcheck disable=SC2086
	if ! vt_until 15 $ready; then
		echo "FAIL ${scmd[0]} client/server $c/$s: the server did not get ready ($ready)"
		kill $spid 2>/dev/null; wait $spid; sed 's/^/  server| /' "$CM_TMP/server"; CM_FAIL=1
		return 1
	fi
	[ -z "${CM_ON_READY:-}" ] || $CM_ON_READY
	# shellcheck disable=SC2046
	vd_bounded 60 $(cm_wrap "$c") "$@" >"$CM_TMP/client" 2>&1
	CM_CRC=$?
	wait $spid
	CM_SRC=$?
	return 0
}

# cm_show_pair: both outputs, for a FAIL line
cm_show_pair() { sed 's/^/  client| /' "$CM_TMP/client"; sed 's/^/  server| /' "$CM_TMP/server"; }

cm_ids_back() {
	local base=$1
	# shellcheck disable=SC2317	# called through vt_until
	cm_ids_at_base() { [ "$(rdma res show cm_id 2>/dev/null | wc -l)" -le "$base" ]; }
	if vt_until 10 cm_ids_at_base; then
		echo "ok   rdma res show cm_id back to its $base lines"
	else
		echo "FAIL CM IDs left behind ($base lines before):"
		rdma res show cm_id | sed 's/^/  | /'; CM_FAIL=1
	fi
}

cm_end() {
	[ "$CM_FAIL" = 0 ] ||
		{ echo "vbusd's log:"; tail -n 40 "$VD_RUN_DIR/vbusd.log" | sed 's/^/  vbusd| /'; }
	rm -rf "$CM_TMP"
	exit "$CM_FAIL"
}
