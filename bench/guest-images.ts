// How the rootfs image formats compare, for the choice in docs/microvm.md ("The guest"): build time and size on
// the host, and in a real guest (TCG) the overlay mount and a cold read of every file, for the busybox rootfs
// and a ~100 MB one (busybox + the host's Python standard library). Not part of npm run bench (it takes about a
// minute of boots); run it with `node dist/bench/guest-images.js [ROUNDS]` after npm run build.
import { cpSync, existsSync, mkdirSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { bootToPowerOff, buildInitramfs, compileStaticInit } from './guest-bare-boot.js';
import { buildRootfsImage, type RootfsFsType } from '../src/drivers/qemu/rootfs-image.js';
import { median } from './stats.js';

const PROJECT = fileURLToPath(new URL('../../', import.meta.url));
const PROBE_SOURCES = ['native/probes/guest-probe.c', 'native/agent/guest-init.c', 'native/agent/guest-port.c', 'native/agent/guest-rootfs.c', 'native/common/util.c', 'native/agent/log.c'];
const LARGE_EXTRA = ['/usr/lib/python3.11', '/usr/lib/python3'];


async function measure(initrd: string, rootfs: string, image: string, fstype: RootfsFsType, rounds: number): Promise<string> {
  const build: number[] = [];
  for (let round = 0; round < rounds; round++) {
    const started = performance.now();
    await buildRootfsImage(rootfs, image, fstype);
    build.push(performance.now() - started);
  }
  const { size, blocks } = statSync(image);
  const mount: number[] = [];
  const read: number[] = [];
  for (let round = 0; round < rounds; round++) {
    const boot = await bootToPowerOff({
      initrd, cmdline: [`image_fstype=${fstype}`], timeoutMs: 300_000,
      qemuArgs: [
        '-device', 'virtio-serial-device', '-chardev', 'file,id=listing,path=/dev/null', '-device', 'virtserialport,chardev=listing,name=listing',
        '-drive', `file=${image},format=raw,if=none,id=rootfs,readonly=on`, '-device', 'virtio-blk-device,drive=rootfs',
      ],
    });
    const timing = /timing: mount (\d+) us, stat and read everything \(cold\) (\d+) us/.exec(boot.console);
    if (!timing) throw new Error(`the probe did not mount the ${fstype} image:\n${boot.console}`);
    mount.push(Number(timing[1]) / 1000);
    read.push(Number(timing[2]) / 1000);
  }
  const mib = (bytes: number) => (bytes / 1048576).toFixed(1);
  return `| ${fstype} | ${median(build).toFixed(0)} ms | ${mib(size)} MiB (${mib(blocks * 512)} MiB on disk) | ${median(mount).toFixed(0)} ms | ${median(read).toFixed(0)} ms |`;
}

async function main(rounds: number): Promise<void> {
  const work = mkdtempSync(join(tmpdir(), 'runbox-guest-images-'));
  try {
    const probe = join(work, 'probe');
    await compileStaticInit(PROBE_SOURCES, probe);
    await buildInitramfs(probe, join(work, 'initrd.img'));
    const busybox = join(PROJECT, 'fixtures', 'busybox', 'build', 'rootfs');
    const rootfses: [string, string][] = [['busybox', busybox]];
    if (LARGE_EXTRA.every((dir) => existsSync(dir))) {
      const large = join(work, 'large');
      cpSync(busybox, large, { recursive: true, verbatimSymlinks: true });
      mkdirSync(join(large, 'usr', 'lib'), { recursive: true });
      for (const dir of LARGE_EXTRA) cpSync(dir, join(large, dir), { recursive: true, verbatimSymlinks: true });
      rootfses.push(['~100 MB (busybox + Python stdlib)', large]);
    }
    const lines = [`rootfs images, median of ${rounds}; mount and read measured in the guest under TCG`];
    for (const [name, rootfs] of rootfses) {
      lines.push('', `${name}:`, '', '| fs | build | image | mount (overlay incl.) | stat + read every file, cold |', '| --- | ---: | ---: | ---: | ---: |');
      for (const fstype of ['erofs', 'ext4'] as RootfsFsType[]) lines.push(await measure(join(work, 'initrd.img'), rootfs, join(work, `image.${fstype}`), fstype, rounds));
    }
    process.stdout.write(`${lines.join('\n')}\n`);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

await main(Number(process.argv[2] ?? 3));
