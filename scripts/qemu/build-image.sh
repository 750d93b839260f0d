#!/usr/bin/env bash
# Build, once, the tiny Debian guest that the QEMU NVMe test boots: a kernel with NVMe and ext4
# built in (no initramfs) and an ext4 root file system with python3 and nvme-cli.
#
# Usage: scripts/qemu/build-image.sh [CACHE_DIR]
#   CACHE_DIR defaults to ${QUALIFY_QEMU_CACHE:-$HOME/.cache/qualify-qemu}.
# Prints the folder holding vmlinuz, rootfs.img and image.json. Idempotent: a finished build
# (stamp file image.json) is reused; a build of a changed script lands in a new folder.
# Needs root for debootstrap (CI runs as root); the kernel comes from `apt-get download`, so
# apt's package lists must be current (`apt-get update`).
set -euo pipefail

cache="${1:-${QUALIFY_QEMU_CACHE:-$HOME/.cache/qualify-qemu}}"
suite="${QUALIFY_QEMU_SUITE:-$(. /etc/os-release && echo "${VERSION_CODENAME:-bookworm}")}"
# The mirror apt already uses here, so the build needs no network access apt does not have.
default_mirror="$( {
  sed -n 's/^URIs: *\(http[^ ]*\/debian\)\/\{0,1\} *$/\1/p' /etc/apt/sources.list.d/*.sources
  sed 's/\[[^]]*\]//' /etc/apt/sources.list /etc/apt/sources.list.d/*.list | awk '$1 == "deb" && $2 ~ /\/debian\/?$/ {print $2}'
} 2>/dev/null | head -n1 || true)"
mirror="${QUALIFY_QEMU_MIRROR:-${default_mirror:-http://deb.debian.org/debian}}"
packages="python3,nvme-cli"
# The root partition's MBR disk signature: the kernel finds its root by PARTUUID, because
# NVMe controllers probe asynchronously and /dev/nvme0 is not always the first -device.
disk_id="0x51a11f1e"
root_partuuid="51a11f1e-01"
# About 160 MiB are used; the guest writes only to tmpfs and QEMU's snapshot overlay.
rootfs_mib=256

key="$(cat "$0" | sha256sum | cut -c1-12)-${suite}"
out="${cache}/${key}"
if [ -f "${out}/image.json" ]; then
  echo "${out}"
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  echo "build-image.sh: debootstrap needs root" >&2
  exit 1
fi
for tool in debootstrap mke2fs sfdisk dpkg-deb apt-get apt-cache chroot flock; do
  command -v "${tool}" >/dev/null || { echo "build-image.sh: ${tool} not found" >&2; exit 1; }
done

mkdir -p "${cache}"
exec 9>"${cache}/.lock"
flock 9
# Another build may have finished while this one waited for the lock.
if [ -f "${out}/image.json" ]; then
  echo "${out}"
  exit 0
fi

start=$(date +%s)
work="$(mktemp -d "${cache}/build.XXXXXX")"
trap 'rm -rf "${work}"' EXIT

# Kernel: Debian's cloud flavour has NVMe, ext4 and the 8250 console built in.
kpkg="$(apt-cache depends linux-image-cloud-amd64 | awk '/Depends: linux-image-/{print $2; exit}')"
[ -n "${kpkg}" ] || { echo "build-image.sh: no linux-image-cloud-amd64 in apt's lists" >&2; exit 1; }
(cd "${work}" && apt-get download -q "${kpkg}" >&2)
dpkg-deb -x "${work}"/"${kpkg}"_*.deb "${work}/kernel"

rootfs="${work}/rootfs"
debootstrap --variant=minbase --include="${packages}" "${suite}" "${rootfs}" "${mirror}" >&2

# The boot stub: find the payload disk by its serial number, mount it, run its init script.
# It stays tiny and fixed so the image never needs a rebuild when the tests change.
cat > "${rootfs}/sbin/qualify-init" <<'STUB'
#!/bin/sh
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tmpfs tmpfs /tmp
mkdir -p /payload
for ctrl in /sys/class/nvme/nvme*; do
  if [ "$(cat "${ctrl}/serial" | tr -d ' ')" = "QPAYLOAD" ]; then
    mount -o ro "/dev/$(basename "${ctrl}")n1" /payload
  fi
done
if [ -x /payload/guest-init.sh ]; then
  /payload/guest-init.sh
else
  echo "qualify-init: no payload disk (serial QPAYLOAD) found" > /dev/ttyS1
fi
# Power off through SysRq; it completes asynchronously, so wait for it instead of letting
# init exit (which panics the kernel; panic=-1 with -no-reboot then ends QEMU all the same).
echo o > /proc/sysrq-trigger
sleep 30
STUB
chmod 755 "${rootfs}/sbin/qualify-init"

# Trim what a guest that boots once to run one script never reads.
rm -rf "${rootfs}"/usr/share/doc/* "${rootfs}"/usr/share/man/* "${rootfs}"/usr/share/info/* \
  "${rootfs}"/usr/share/locale/* "${rootfs}"/var/cache/apt/* "${rootfs}"/var/lib/apt/lists/* \
  "${rootfs}"/var/log/*
: > "${rootfs}/etc/fstab"

# A partitioned disk image built without loop devices: file system at 1 MiB, MBR in front.
mke2fs -q -t ext4 -L qroot -d "${rootfs}" "${work}/root.ext4" "${rootfs_mib}M"
truncate -s "$((rootfs_mib + 1))M" "${work}/rootfs.img"
printf 'label: dos\nlabel-id: %s\nstart=2048, type=83\n' "${disk_id}" | sfdisk -q "${work}/rootfs.img"
dd if="${work}/root.ext4" of="${work}/rootfs.img" bs=1M seek=1 conv=notrunc,sparse status=none

mkdir -p "${out}"
cp "${work}"/kernel/boot/vmlinuz-* "${out}/vmlinuz"
mv "${work}/rootfs.img" "${out}/rootfs.img"
kver="$(basename "${work}"/kernel/boot/vmlinuz-* | sed 's/^vmlinuz-//')"
nvme_cli="$(chroot "${rootfs}" dpkg-query -W -f='${Version}' nvme-cli)"
python="$(chroot "${rootfs}" dpkg-query -W -f='${Version}' python3)"
cat > "${out}/image.json.tmp" <<JSON
{
  "suite": "${suite}",
  "mirror": "${mirror}",
  "kernel": "${kver}",
  "nvme_cli": "${nvme_cli}",
  "python3": "${python}",
  "root": "PARTUUID=${root_partuuid}",
  "build_seconds": $(( $(date +%s) - start ))
}
JSON
mv "${out}/image.json.tmp" "${out}/image.json"
# Builds of older versions of this script are dead weight in a CI cache.
find "${cache}" -mindepth 1 -maxdepth 1 -type d -name '*-*' ! -path "${out}" -exec rm -rf {} +
echo "${out}"
