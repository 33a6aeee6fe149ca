#!/bin/bash
# Inside the VM for test_vm_runner.py: reports what the runner promises, as
# key=value lines on stdout, writes a file to the results share, says
# something on stderr, and exits with $1.
echo "uname=$(uname -r)"
echo "uid=$(id -u)"
echo "cwd=$(pwd)"
echo "path=$PATH"
echo "vm=$LABGW_VM"
echo "results=$LABGW_VM_RESULTS"
echo "extra_env=$LABGW_TEST_EXTRA"
echo "repo=$LABGW_REPO"
echo "args=$*"
echo "procsubst=$(cat <(echo works))"
echo "root_fs=$(findmnt -n -o FSTYPE /)"
echo "root_ro_write=$(touch /etc/labgw-vm-probe 2>&1 && echo ok)"
echo "tmp_fs=$(findmnt -n -o FSTYPE --target /tmp)"
echo "run_fs=$(findmnt -n -o FSTYPE /run)"
echo "btstate_fs=$(findmnt -n -o FSTYPE /var/lib/bluetooth)"
echo "results_fs=$(findmnt -n -o FSTYPE "$LABGW_VM_RESULTS")"
echo "vhci=$(test -c /dev/vhci && echo yes)"
echo "af_alg=$(test -d /sys/module/algif_skcipher && test -d /sys/module/algif_hash && echo yes)"
echo "hwsim_radios=$(cat /sys/module/mac80211_hwsim/parameters/radios 2>/dev/null)"
echo "phys=$(ls /sys/class/ieee80211 2>/dev/null | wc -l)"
echo "modprobe_ccm=$(modprobe -r ccm 2>/dev/null; modprobe ccm && test -d /sys/module/ccm && echo ok)"
echo "lo=$(cat /sys/class/net/lo/operstate)"
echo "from the VM" >"$LABGW_VM_RESULTS/hello.txt"
echo "this goes to stderr" >&2
exit "$1"
