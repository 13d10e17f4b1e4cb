#!/usr/bin/env bash
# Builds a Debian guest for the VM journeys (tests/vm.rs), as root, from Debian's package
# mirror: debootstrap with the kernel, systemd, the user session's D-Bus, uidmap, passt and
# fuse-overlayfs; a user `dev` (uid 1000, with subordinate ids) whose systemd user manager
# runs from boot (linger); a unit that runs /mnt/job/journey.sh at boot and powers off.
# The disk is an ext4 image made from the tree (mke2fs -d: no loop device); the kernel and
# initrd sit beside it for qemu's direct boot.
#
#   tests/vm/build-guest.sh RELEASE OUT_DIR     # RELEASE: bookworm (Debian 12) or trixie (13)
#
# OUT_DIR gets disk.img, vmlinuz, initrd.img and build.log; it is made whole or not at all.
set -euo pipefail
release=${1:?release: bookworm or trixie}
out=${2:?output dir}
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
[ "$(id -u)" = 0 ] || { echo "error: building a guest needs root (debootstrap)" >&2; exit 1; }
for tool in debootstrap mke2fs; do
    command -v "$tool" >/dev/null || { echo "error: $tool is missing (scripts/host-packages.sh installs it)" >&2; exit 1; }
done
packages=linux-image-amd64,systemd-sysv,dbus,libpam-systemd,dbus-user-session,uidmap,passt,fuse-overlayfs,kmod,procps
# Debian 13 as Ubuntu and Fedora: systemd-resolved, so the first name server is 127.0.0.53.
[ "$release" = trixie ] && packages+=,systemd-resolved

partial=$out.partial
rm -rf "$partial"
mkdir -p "$partial"
root=$partial/root
log=$partial/build.log
debootstrap --variant=minbase --include="$packages" "$release" "$root" "$mirror" >"$log" 2>&1 \
    || { echo "error: debootstrap $release failed (see $log): is $mirror reachable?" >&2; tail -5 "$log" >&2; exit 1; }

echo "sandbox-$release" >"$root/etc/hostname"
cat >"$root/etc/fstab" <<'FSTAB'
/dev/vda / ext4 rw,relatime 0 1
job /mnt/job 9p trans=virtio,version=9p2000.L,msize=262144,ro 0 0
out /mnt/out 9p trans=virtio,version=9p2000.L,msize=262144 0 0
FSTAB
mkdir -p "$root/mnt/job" "$root/mnt/out"
# The 9p modules load at mount; the initrd needs only the disk's.
printf '9p\n9pnet_virtio\n' >>"$root/etc/modules"
# qemu's user network: DHCP on the first NIC.
cat >"$root/etc/systemd/network/10-nic.network" <<'NET'
[Match]
Name=en* eth*
[Network]
DHCP=yes
NET
chroot "$root" systemctl enable systemd-networkd >>"$log" 2>&1
# Name servers as DHCP gives them (debootstrap copied this machine's); on Debian 13,
# systemd-resolved's stub.
if [ "$release" = trixie ]; then
    chroot "$root" systemctl enable systemd-resolved >>"$log" 2>&1
    ln -sfn ../run/systemd/resolve/stub-resolv.conf "$root/etc/resolv.conf"
else
    echo "nameserver 10.0.2.3" >"$root/etc/resolv.conf"
fi
# The user, as a person who installed Debian: uid 1000, ranges in /etc/subuid and /etc/subgid
# (useradd adds them), a systemd user manager from boot.
chroot "$root" useradd -m -u 1000 -s /bin/bash dev >>"$log" 2>&1
grep -q '^dev:' "$root/etc/subuid" || echo 'dev:100000:65536' >>"$root/etc/subuid"
grep -q '^dev:' "$root/etc/subgid" || echo 'dev:100000:65536' >>"$root/etc/subgid"
mkdir -p "$root/var/lib/systemd/linger"
touch "$root/var/lib/systemd/linger/dev"
cat >"$root/etc/systemd/system/journey.service" <<'UNIT'
[Unit]
Description=the sandbox journey of tests/vm.rs
Wants=user@1000.service network-online.target
After=user@1000.service network-online.target mnt-job.mount mnt-out.mount
[Service]
Type=oneshot
ExecStart=/bin/sh -c '/mnt/job/journey.sh >/mnt/out/journey.log 2>&1; echo $? >/mnt/out/journey.rc; sync'
ExecStartPost=/bin/systemctl --no-block poweroff
StandardOutput=journal+console
TimeoutStartSec=infinity
[Install]
WantedBy=multi-user.target
UNIT
chroot "$root" systemctl enable journey.service systemd-networkd-wait-online.service >>"$log" 2>&1
# No console login waits on the serial line; the journey is the machine's only work.
chroot "$root" systemctl mask serial-getty@ttyS0.service getty@tty1.service >>"$log" 2>&1
cp "$root"/boot/vmlinuz-* "$partial/vmlinuz"
cp "$root"/boot/initrd.img-* "$partial/initrd.img"
chmod 0644 "$partial/vmlinuz" "$partial/initrd.img"
rm -rf "$root"/var/cache/apt/archives/*.deb
mke2fs -q -t ext4 -L root -d "$root" "$partial/disk.img" 4G >>"$log" 2>&1
rm -rf "$root"
rm -rf "$out"
mv "$partial" "$out"
du -sh "$out"/disk.img
