#!/bin/bash
# ibv_devinfo sees the soft-RoCE device with port 1 ACTIVE on an Ethernet link layer.
[ -n "${VBUS_RXE:-}" ] || { echo "no soft-RoCE device: run this under tests/vm/run"; exit 77; }
out=$(ibv_devinfo -d "$VBUS_RXE" 2>&1) || { echo "ibv_devinfo failed: $out"; exit 1; }
echo "$out"
echo "$out" | grep -q "hca_id:[[:space:]]*$VBUS_RXE\$" || { echo "FAIL: no hca_id $VBUS_RXE"; exit 1; }
echo "$out" | grep -q 'state:[[:space:]]*PORT_ACTIVE' || { echo "FAIL: port not ACTIVE"; exit 1; }
echo "$out" | grep -q 'link_layer:[[:space:]]*Ethernet' || { echo "FAIL: link layer not Ethernet"; exit 1; }
exit 0
