#!/usr/bin/env bash
# Builds the 9p modules Debian's cloud kernel lacks (9pnet, 9pnet_virtio, 9p: a pod's host directories reach its
# microVM over virtio-9p, docs/kubernetes.md) out of tree, from Debian's linux-source-6.1 against the headers of
# the exact guest kernel (linux-headers-<release>, which give the modules its vermagic and symbol versions), into
# build/guest/9p-modules/, which scripts/guest/build-initramfs.sh adds to the initramfs. Idempotent; without the
# headers or the source (npm run setup installs them) it builds nothing and says so.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
guest="$root/build/guest"
out="$guest/9p-modules"
[ -f "$guest/kernel-version" ] || exit 0
release=$(cat "$guest/kernel-version")
headers=/usr/src/linux-headers-$release
source=/usr/src/linux-source-6.1.tar.xz
if [ ! -d "$headers" ] || [ ! -f "$source" ]; then
  echo "build-9p-modules: $headers or $source is missing (npm run setup): microVMs get no host directories" >&2
  exit 0
fi
want="$release $(stat -c %Y "$source") $(sha256sum "$0" | cut -d' ' -f1)"
[ -f "$out/.stamp" ] && [ "$(cat "$out/.stamp")" = "$want" ] && exit 0

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
tar -xJf "$source" -C "$work" linux-source-6.1/net/9p linux-source-6.1/fs/9p
tree="$work/linux-source-6.1"
# Only the virtio transport: the others (fd, rdma, xen) need nothing here.
printf 'obj-m += net/9p/ fs/9p/\n' > "$tree/Kbuild"
make -s -C "$headers" M="$tree" CONFIG_NET_9P=m CONFIG_NET_9P_VIRTIO=m CONFIG_NET_9P_FD= CONFIG_NET_9P_RDMA= \
  CONFIG_NET_9P_XEN= CONFIG_9P_FS=m CONFIG_9P_FSCACHE= CONFIG_9P_FS_POSIX_ACL= CONFIG_9P_FS_SECURITY= modules 2>&1 | grep -v '^Skipping BTF' >&2 || true
rm -rf "$out.new"
mkdir -p "$out.new"
# Without debug sections: 5 MB of them, read at every boot otherwise.
for ko in $(find "$tree" -name '*.ko'); do strip --strip-debug -o "$out.new/$(basename "$ko")" "$ko"; done
echo "$want" > "$out.new/.stamp"
rm -rf "$out"
mv "$out.new" "$out"
