#!/usr/bin/env bash
# Builds a microVM initramfs: INIT as /init, and the guest kernel's modules the VM needs as plain .ko files in
# /lib/modules/runbox with their load order (each after its dependencies) in /lib/modules/runbox/order, which
# the agent's guest_init() loads (native/agent/guest.h).
#   build-initramfs.sh [--gzip] [INIT [OUT]]
# Defaults: the agent (dist/runbox-agent) into build/guest/initrd.img. Uncompressed unless --gzip: under
# TCG the kernel unpacks a plain cpio faster than it inflates a gzip one (docs/microvm.md, "The guest").
# Needs the kernel fetched first (scripts/guest/fetch-kernel.sh).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
guest="$root/build/guest"

compress=cat
if [ "${1:-}" = --gzip ]; then compress="gzip -6 -n"; shift; fi
init=${1:-$root/dist/runbox-agent}
out=${2:-$guest/initrd.img}
wanted=(virtio_mmio virtio_console virtio_blk erofs overlay loop virtio_net)

if [ ! -f "$guest/kernel-version" ]; then
  echo "build-initramfs: no guest kernel yet (npm run setup fetches it): no initramfs, no microVMs" >&2
  [ $# -eq 0 ] && exit 0 # the default build: the rest of runbox builds without it
  exit 1
fi
[ -x "$init" ] || { echo "build-initramfs: $init is not an executable" >&2; exit 1; }
release=$(cat "$guest/kernel-version")
modules="$guest/kernel/lib/modules/$release/kernel"
# libcrc32c (for erofs) asks the crypto API for crc32c, a soft dependency depends= does not list: the generic
# kernel has it as a module, the cloud kernel built in.
if grep -q '^CONFIG_CRYPTO_CRC32C=m' "$guest/kernel/boot/config-$release"; then wanted=(crc32c_generic "${wanted[@]}"); fi

# module name → .ko path (names use _ where file names may use -); the 9p modules the cloud kernel lacks, built
# by scripts/guest/build-9p-modules.sh, when they are there (a pod's host directories need them).
declare -A ko=()
extra=()
if [ -f "$guest/9p-modules/9p.ko" ]; then extra=("$guest/9p-modules"); wanted+=(9pnet_virtio 9p); fi
while read -r name path; do
  name=${name%.ko}
  ko[${name//-/_}]=$path
done < <(find "$modules" "${extra[@]}" -name '*.ko' -printf '%f %p\n')

depends_of() {
  tr '\0' '\n' < "${ko[$1]}" | sed -n 's/^depends=//p' | tr ',' ' '
}

# Copies a module as the guest loads it fastest, which objcopy's rewritten ELF does twice over:
# - without its appended signature (objcopy keeps sections only): checking it (RSA, SHA-256) costs tens of
#   milliseconds per module under TCG, and the kernel does not insist (no MODULE_SIG_FORCE, no lockdown in the VM);
# - without its .BTF section: the first module that has one makes the kernel parse the whole vmlinux BTF to check
#   it against, 0.1-0.3 s of CPU per boot under TCG (docs/microvm.md, "The guest"); only BPF and tracing use it.
copy_module() {
  objcopy --remove-section=.BTF "$1" "$2"
}

declare -A placed=()
order=()
place() { # depth first: dependencies before the module
  local name=${1//-/_} dep
  [ -n "${placed[$name]:-}" ] && return 0
  [ -n "${ko[$name]:-}" ] || { echo "build-initramfs: kernel $release has no module $name" >&2; exit 1; }
  placed[$name]=1
  for dep in $(depends_of "$name"); do place "$dep"; done
  order+=("$name")
}
for name in "${wanted[@]}"; do place "$name"; done

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
tree="$work/tree"
mkdir -p "$tree"/{dev,proc,sys,run,tmp,lib/modules/runbox}
mknod -m 600 "$tree/dev/console" c 5 1
cp "$init" "$tree/init"
for name in "${order[@]}"; do
  copy_module "${ko[$name]}" "$tree/lib/modules/runbox/$name.ko"
  echo "$name.ko" >> "$tree/lib/modules/runbox/order"
done

mkdir -p "$(dirname "$out")"
(cd "$tree" && find . | LC_ALL=C sort | busybox cpio -o -H newc 2>/dev/null) | $compress > "$work/initrd"
mv "$work/initrd" "$out"
