#!/usr/bin/env bash
# Makes a fresh Debian 12 machine (Node 20, root) ready to build, demo, test and bench runbox:
# installs the Debian packages that are missing, the npm dependencies, then builds. Idempotent and quiet when
# there is nothing to do.
set -euo pipefail
cd "$(dirname "$0")/.."

# command-or-file → Debian package
declare -A wanted=(
  [gcc]=gcc
  # Node's headers, for the warm pool's Node-API addon (native/addon/handoff.c)
  [/usr/include/node/node_api.h]=nodejs
  # the guest's kernel modules are rewritten without what slows their loading (scripts/guest/build-initramfs.sh)
  [objcopy]=binutils
  [make]=make
  [/usr/lib/x86_64-linux-gnu/libc.a]=libc6-dev
  # the agent links libseccomp statically: it compiles containers' seccomp filters (native/agent/seccomp_filter.c)
  [/usr/lib/x86_64-linux-gnu/libseccomp.a]=libseccomp-dev
  [umoci]=umoci
  [runc]=runc
  [hyperfine]=hyperfine
  [go]=golang-go
  # containerd's Go ttrpc, for the interop test of src/rpc (test/rpc-interop.test.ts)
  [/usr/share/gocode/src/github.com/containerd/ttrpc]=golang-github-containerd-ttrpc-dev
  [zstd]=zstd
  [setfattr]=attr
  [skopeo]=skopeo
  [docker-registry]=docker-registry
  [containerd]=containerd
  # CNI's bridge and host-local plugins, for the pods of the CRI tests (test/helpers/cri.ts)
  [/usr/lib/cni/bridge]=containernetworking-plugins
  [openssl]=openssl
  [python3]=python3
  [lz4]=lz4
  [mkfs.erofs]=erofs-utils
  [mkfs.ext4]=e2fsprogs
  [qemu-system-x86_64]=qemu-system-x86
  # upstream's eStargz writer (ctr-remote images convert/optimize): the reference the lazy-loading tests read
  [ctr-remote]=stargz-snapshotter
  # lazy loading serves images over FUSE on /dev/fuse (no libfuse): fuse3 brings /etc/fuse.conf and fusermount3
  [fusermount3]=fuse3
  # a pod's microVM: its tap and tc redirects in the pod's network namespace (src/drivers/qemu/pod-network.ts)
  [tc]=iproute2
  [nsenter]=util-linux
  # the guest's 9p modules, built against the exact guest kernel (scripts/guest/build-9p-modules.sh): a pod's
  # host directories in its microVM; the revision of the source matches the pinned kernel's
  [/usr/src/linux-headers-6.1.0-56-cloud-amd64]=linux-headers-6.1.0-56-cloud-amd64
  [/usr/src/linux-source-6.1.tar.xz]=linux-source-6.1=6.1.192-2
  # the enclave driver's vTPM: one swtpm per sandbox (swtpm-tools and tpm2-tools to inspect one by hand)
  [swtpm]=swtpm
  [swtpm_setup]=swtpm-tools
  [tpm2_quote]=tpm2-tools
)
missing=()
for what in "${!wanted[@]}"; do
  if [[ $what == /* ]]; then [ -e "$what" ] && continue
  else command -v "$what" >/dev/null 2>&1 && continue; fi
  missing+=("${wanted[$what]}")
done
# busybox-static, not the dynamic busybox: it is copied into rootfs images
dpkg -s busybox-static >/dev/null 2>&1 || missing+=(busybox-static)
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing Debian packages: ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq "${missing[@]}" >&2
fi

if [ ! -f node_modules/.package-lock.json ] || [ package.json -nt node_modules/.package-lock.json ] \
   || [ ! -e node_modules/fs-ext/build/Release/fs_ext.node ]; then
  echo "setup: installing npm dependencies" >&2
  npm install --no-audit --no-fund --loglevel=error >&2
  [ -e node_modules/fs-ext/build/Release/fs_ext.node ] || npm rebuild fs-ext >&2
fi

# The microVM guest kernel (Debian's cloud kernel, unpacked into build/guest, not installed)
bash scripts/guest/fetch-kernel.sh

npm run -s build >&2
