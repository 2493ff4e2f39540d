#!/usr/bin/env bash
# Fetches the microVM guest kernel without installing it: Debian's cloud kernel package is downloaded with
# `apt-get download`, unpacked with `dpkg -x` into build/guest/kernel/, and the uncompressed vmlinux (the ELF
# with the PVH entry, which boots faster than the bzImage) is cut out of the bzImage's compressed payload:
#   build/guest/vmlinux          the kernel QEMU boots
#   build/guest/kernel-version   its release (what `uname -r` prints in the guest)
#   build/guest/kernel-hz        its CONFIG_HZ (for lpj=)
#   build/guest/kernel/lib/modules/<release>/   its modules, for the initramfs
# Idempotent: does nothing when the pinned package is already unpacked.
# RUNBOX_GUEST_KERNEL_PACKAGE overrides the package (e.g. the generic linux-image-6.1.0-*-amd64, which has 9p).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
out="$root/build/guest"
# Pinned so every machine boots the same guest; when the archive has moved on (Debian security updates replace
# the ABI), the cloud kernel the meta-package currently points at is used instead.
pinned=linux-image-6.1.0-56-cloud-amd64
package=${RUNBOX_GUEST_KERNEL_PACKAGE:-$pinned}
stamp="$out/.kernel-stamp"

[ -f "$stamp" ] && [ "$(cat "$stamp")" = "$package" ] && [ -f "$out/vmlinux" ] && [ -s "$out/kernel-hz" ] && exit 0

for tool in apt-get dpkg lz4 od; do
  command -v "$tool" >/dev/null || { echo "fetch-kernel: $tool is missing" >&2; exit 1; }
done

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
if ! apt-get download -qq "$package" 2>/dev/null; then
  current=$(apt-cache depends linux-image-cloud-amd64 2>/dev/null | sed -n 's/^ *Depends: \(linux-image-[^ ]*\)$/\1/p' | head -1)
  if [ -z "${RUNBOX_GUEST_KERNEL_PACKAGE:-}" ] && [ -n "$current" ]; then
    echo "fetch-kernel: $package is no longer in the archive; using $current" >&2
    package=$current
    apt-get download -qq "$package"
  else
    echo "fetch-kernel: cannot download $package (apt-get update? the package name?)" >&2
    exit 1
  fi
fi
mkdir unpacked
dpkg -x ./*.deb unpacked
release=$(ls unpacked/lib/modules)
bzimage="unpacked/boot/vmlinuz-$release"
[ -f "$bzimage" ] || { echo "fetch-kernel: $package has no /boot/vmlinuz-$release" >&2; exit 1; }

# The bzImage's payload: an LZ4 frame (legacy format, magic 02 21 4c 18: the cloud kernel) or an xz stream
# (magic fd 37 7a 58 5a 00: the generic kernel). Both decompressors stop at the payload's end by themselves.
payload_at() { LC_ALL=C grep -obUaP "$1" "$bzimage" | head -1 | cut -d: -f1 || true; }
if offset=$(payload_at '\x02\x21\x4c\x18') && [ -n "$offset" ]; then
  tail -c +$((offset + 1)) "$bzimage" | lz4 -dc 2>/dev/null > vmlinux || true
elif offset=$(payload_at '\xfd\x37\x7a\x58\x5a\x00') && [ -n "$offset" ]; then
  tail -c +$((offset + 1)) "$bzimage" | xz -dc --single-stream 2>/dev/null > vmlinux || true
else
  echo "fetch-kernel: no LZ4 or xz payload in $bzimage" >&2; exit 1
fi
[ "$(od -An -c -N4 vmlinux | tr -d ' ')" = '177ELF' ] || { echo "fetch-kernel: $bzimage did not decompress to an ELF" >&2; exit 1; }

rm -rf "$out/kernel" "$out/vmlinux"
mkdir -p "$out"
mv unpacked "$out/kernel"
mv vmlinux "$out/vmlinux"
echo "$release" > "$out/kernel-version"
sed -n "s/^CONFIG_HZ=//p" "$out/kernel/boot/config-$release" > "$out/kernel-hz"
echo "$package" > "$stamp"
echo "fetch-kernel: $package ($release) in build/guest" >&2
