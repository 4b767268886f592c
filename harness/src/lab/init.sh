#!/bin/busybox sh
# kpbench lab guest /init (PID 1). Protocol with the host (harness/src/lab/qemu/):
#  - /lab/run.env (appended per run) sets KPBENCH_LAB_NONCE, KPBENCH_KERNEL_SOURCE, ...;
#    the accelerator comes from the kernel command line (kpbench.accel=tcg|kvm).
#  - Markers on the console, each on its own line: @@KPBENCH-LAB:<nonce>:INIT@@ (init is
#    running), :BEGIN@@ (the command starts), :END rc=<n>@@ (its exit code).
#  - /lab/out (the command's --out dir) and /lab/status are written as a tar archive onto
#    the raw virtio disk /dev/vda; without that disk, as base64 between :TAR-BEGIN@@ and
#    :TAR-END@@ on the console. Then the guest powers off (qemu runs with -no-reboot).
#  - The command runs under /bin/sh, a real shell (dash) when the host has one: busybox's
#    own ash would run its applets (e.g. its small `ip`) before the real tools on PATH.
#    busybox's applet links only fill names no real tool took (initramfs/stage.rs).
BB=/usr/bin/busybox
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/root TERM=dumb
$BB mount -t proc proc /proc
$BB mount -t sysfs sysfs /sys
$BB mount -t devtmpfs devtmpfs /dev 2>/dev/null
$BB mount -t tmpfs -o mode=0755 tmpfs /run
$BB mount -t tmpfs tmpfs /tmp
$BB mkdir -p /dev/pts /dev/shm /run/netns
$BB mount -t devpts devpts /dev/pts 2>/dev/null
$BB mount -t tmpfs tmpfs /dev/shm
$BB mount -t cgroup2 cgroup2 /sys/fs/cgroup 2>/dev/null
$BB mount -t bpf bpf /sys/fs/bpf 2>/dev/null
[ -e /dev/fd ] || $BB ln -s /proc/self/fd /dev/fd
. /lab/run.env
N="$KPBENCH_LAB_NONCE"
echo "@@KPBENCH-LAB:$N:INIT@@"

for arg in $($BB cat /proc/cmdline); do
	case "$arg" in
	kpbench.accel=*) export KPBENCH_ENV_KIND="lab-${arg#kpbench.accel=}" ;;
	esac
done
export KPBENCH_LAB=1 KPBENCH_LAB_OUT=/lab/out

echo "kpbench-lab: init at uptime $($BB cut -d' ' -f1 /proc/uptime)s"
echo /sbin/modprobe >/proc/sys/kernel/modprobe
# Every name in modules.load is in the image: load them in one go (one exec under TCG
# is much cheaper than eighty); name the failures one by one otherwise.
mods=$($BB cat /lab/modules.load 2>/dev/null)
if [ -n "$mods" ] && ! /sbin/modprobe -a $mods 2>/dev/null; then
	for m in $mods; do
		/sbin/modprobe "$m" 2>/dev/null || echo "kpbench-lab: modprobe $m failed"
	done
fi
/usr/bin/ip link set lo up 2>/dev/null || $BB ip link set lo up
$BB hostname kpbench-lab

$BB mkdir -p /lab/out /lab/status /lab/work
cd /lab/work
# Only emergencies and alerts (panics, oopses) may interleave with the command's output.
echo 2 >/proc/sys/kernel/printk
echo "kpbench-lab: command starts at uptime $($BB cut -d' ' -f1 /proc/uptime)s"
echo "@@KPBENCH-LAB:$N:BEGIN@@"
# Through a pipe, so the command sees no terminal (no progress-bar redraws on the console).
{
	/bin/sh /lab/cmd.sh </dev/null
	echo "$?" >/lab/status/exit_code
} 2>&1 | $BB cat
rc=$($BB cat /lab/status/exit_code 2>/dev/null)
[ -n "$rc" ] || rc=255
echo "@@KPBENCH-LAB:$N:END rc=$rc@@"
cd /
if [ -b /dev/vda ]; then
	$BB tar -cf /dev/vda -C /lab out status || echo "kpbench-lab: writing results to /dev/vda failed"
	$BB sync
else
	echo "@@KPBENCH-LAB:$N:TAR-BEGIN@@"
	$BB tar -cf - -C /lab out status | $BB base64
	echo "@@KPBENCH-LAB:$N:TAR-END@@"
fi
$BB sync
$BB poweroff -f
