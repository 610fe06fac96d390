#!/bin/bash
# guest-vm.sh with the VM ending the other way (issue 17, "shut down from inside mid-traffic"):
# `poweroff -f` inside it under its last integrity run on k0, instead of SIGKILL to QEMU.
# QEMU exits 0, a process guest's integrity run across it passes, the VM's connection goes
# and `rdma res show` is back at its count before the VM. A second nested VM boot does not
# fit make test's budget: make soak.
# soak-only: a second boot of a VM inside the test VM (about 7 minutes)
# timeout: 900
# backends: relay
VBUS_VM_END=poweroff exec bash "$VBUS_TOP/tests/device/guest-vm.sh" "$@"
