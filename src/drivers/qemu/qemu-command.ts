// The QEMU command line of a runbox microVM: `-M microvm` with nothing QEMU would add by itself, the guest
// kernel and initramfs, the container's rootfs as a read-only virtio-blk disk, and virtio-serial ports for the
// agent (agent.N), the exit report (exit) and the caller's stdio (stdin, stdout, stderr).
import { basename, join } from 'node:path';
import type { Accel } from './qemu-accel.js';
import { agentPortName, agentPortSocket } from './qemu-agent-port.js';
import type { VmResources } from './qemu-resources.js';
import { POD_TAP } from './pod-network.js';
import { VOLUMES_TAG } from './pod-volumes.js';

export const QEMU_BINARY = process.env.RUNBOX_QEMU ?? 'qemu-system-x86_64';

/**
 * TCG's translated-code cache, in MiB: a guest's boot up to a container's first output translates ~45 MB of code.
 * A full cache is flushed and everything retranslated (at 32 MiB that happened in every boot, ~0.5 s of CPU);
 * uncapped (QEMU's default is far larger), a long-lived VM's cache, and QEMU's RSS with it, would keep growing.
 */
const TCG_CODE_CACHE_MIB = 64;

/**
 * One of the caller's stdio streams as QEMU holds it for the container: a socket (as Node's 'pipe' stdio is) is
 * a connected socket chardev on QEMU's fd; output open write-only (a shell's `>`, `>>`, a pipe) is written
 * through that very open file (`shared`: an fd set, /dev/fdset/N), sharing its file offset with the caller as
 * an inherited fd does — reopened, a regular file would be written at QEMU's own offset, over what the caller
 * writes after it; other output (a terminal, a FIFO, a regular file open for reading too but appending, which an
 * fd set cannot hand to a write-only open; the driver refuses one that does not append) is reopened through
 * /proc/self/fd; input is QEMU's own fd 0 (QEMU 7.2's file chardev has no input side, its stdio one has).
 */
export type HeldStream =
  | { kind: 'socket'; fd: number }
  | { kind: 'shared'; fd: number }
  | { kind: 'file'; fd: number }
  | { kind: 'stdio' };

export interface InheritedStdio {
  stdin?: HeldStream;
  stdout?: HeldStream;
  stderr?: HeldStream;
}

/** The fd set that holds a shared stream: one per fd, numbered after it. */
const fdSet = (fd: number) => fd;

function chardev(stream: HeldStream): string {
  switch (stream.kind) {
    case 'socket':
      return `socket,fd=${stream.fd}`;
    case 'shared':
      // append=on: QEMU's dup of the caller's file gets O_APPEND (append=off would truncate it).
      return `file,path=/dev/fdset/${fdSet(stream.fd)},append=on`;
    case 'file':
      return `file,path=/proc/self/fd/${stream.fd},append=on`;
    case 'stdio':
      return 'stdio,signal=off';
  }
}

export interface VmFiles {
  qmp: string;
  exit: string;
  console: string;
  log: string;
  image: string;
  /** Where the next image appended to the disk goes (rootfs-image.ts). */
  diskEnd: string;
}

export function vmFiles(dir: string): VmFiles {
  return {
    qmp: join(dir, 'qmp.sock'),
    exit: join(dir, 'exit'),
    console: join(dir, 'console.log'),
    log: join(dir, 'qemu.log'),
    image: join(dir, 'rootfs.img'),
    diskEnd: join(dir, 'disk.end'),
  };
}

export interface QemuCommand {
  dir: string;
  accel: Accel;
  resources: VmResources;
  kernel: string;
  initrd: string;
  cmdline: string[];
  agentPorts: number;
  stdio: InheritedStdio;
  /** The container's rootfs, read-only: a raw disk image, or an NBD export (a lazily loaded image). */
  image?: string | { nbd: string; export: string };
  /**
   * The guest's RAM in a file: shared (a template being built: what the guest writes goes to the file) or
   * private (a clone: the file mapped copy-on-write). Without it, anonymous memory.
   */
  memory?: { path: string; shared: boolean };
  /** A clone: nothing is booted, QEMU waits for a template's device state (`migrate-incoming`, qemu-snapshot.ts). */
  incoming?: boolean;
  /**
   * Every stdio port, a stream the caller did not give as a `null` chardev: a template and its clones must have
   * the same devices, whatever stdio each clone's caller has.
   */
  everyStdioPort?: boolean;
  /**
   * A virtio-net NIC on the tap POD_TAP of the network namespace QEMU runs in (a pod's, or a template's own
   * throwaway one), with this MAC when given (a clone keeps its template's: the guest sets the pod's).
   */
  nic?: { mac?: string };
  /** A host directory exported over virtio-9p with the tag VOLUMES_TAG: a pod's volumes (pod-volumes.ts). */
  volumes?: string;
}

/** QEMU option values end at a comma; a comma inside one is written twice. */
function value(text: string): string {
  return text.replaceAll(',', ',,');
}

function port(id: string, chardev: string, name = id): string[] {
  return ['-chardev', `${chardev},id=${id}`, '-device', `virtserialport,chardev=${id},name=${name}`];
}

export function qemuArgs(command: QemuCommand): string[] {
  const files = vmFiles(command.dir);
  const args = [
    '-M', 'microvm',
    '-accel', command.accel === 'tcg' ? `tcg,tb-size=${TCG_CODE_CACHE_MIB}` : 'kvm',
    ...(command.accel === 'kvm' ? ['-cpu', 'host'] : []),
    '-m', `${command.resources.memoryMib}M`,
    '-smp', String(command.resources.vcpus),
    '-nodefaults', '-no-user-config', '-no-reboot', '-display', 'none',
    // A clone's guest is already booted: the kernel's files would only be read for nothing.
    ...(command.incoming ? ['-incoming', 'defer'] : ['-kernel', command.kernel, '-initrd', command.initrd, '-append', command.cmdline.join(' ')]),
    // The console as a chardev: -serial's own `file:PATH` takes PATH as written, with no way to hold a comma.
    '-chardev', `file,id=console,path=${value(files.console)}`, '-serial', 'chardev:console',
    // Sockets by their names alone: QEMU runs in the VM's directory (QemuDriver's startVm), whose path may be
    // longer than a sockaddr_un holds.
    '-qmp', `unix:${value(basename(files.qmp))},server=on,wait=off`,
  ];
  const ports = [...port('exit', `file,path=${value(files.exit)}`)];
  for (const name of ['stdin', 'stdout', 'stderr'] as const) {
    const stream = command.stdio[name];
    if (stream?.kind === 'shared') args.push('-add-fd', `fd=${stream.fd},set=${fdSet(stream.fd)}`);
    if (stream) ports.push(...port(name, chardev(stream)));
    else if (command.everyStdioPort) ports.push(...port(name, 'null'));
  }
  for (let i = 0; i < command.agentPorts; i++) {
    ports.push(...port(`agent${i}`, `socket,path=${value(basename(agentPortSocket(command.dir, i)))},server=on,wait=off`, agentPortName(i)));
  }
  // Room for these ports only (port 0 is the console's, unused): the guest sets up two virtqueues per possible
  // port when the driver loads, 64 for QEMU's default of 31 ports.
  const maxPorts = 1 + ports.filter((arg) => arg.startsWith('virtserialport,')).length;
  args.push('-device', `virtio-serial-device,max_ports=${maxPorts}`, ...ports);
  if (command.image) {
    // An NBD server that restarts is reconnected to, its requests retried meanwhile.
    const source = typeof command.image === 'string'
      ? `file=${value(command.image)},format=raw`
      : `driver=nbd,server.type=unix,server.path=${value(command.image.nbd)},export=${value(command.image.export)},reconnect-delay=60`;
    args.push(
      '-drive', `${source},if=none,id=rootfs,readonly=on`,
      '-device', 'virtio-blk-device,drive=rootfs',
    );
  }
  if (command.nic) {
    // vnet_hdr=on always: a snapshot made with it restores only onto a tap that has it (docs/kubernetes.md).
    args.push(
      '-netdev', `tap,id=net0,ifname=${POD_TAP},script=no,downscript=no,vnet_hdr=on`,
      '-device', `virtio-net-device,netdev=net0${command.nic.mac ? `,mac=${command.nic.mac}` : ''}`,
    );
  }
  if (command.volumes) {
    // multidevs=remap: the export holds bind mounts of other filesystems, whose inode numbers may collide.
    args.push(
      '-fsdev', `local,id=volumes,path=${value(command.volumes)},security_model=passthrough,multidevs=remap`,
      '-device', `virtio-9p-device,fsdev=volumes,mount_tag=${VOLUMES_TAG}`,
    );
  }
  if (command.memory) {
    const { path, shared } = command.memory;
    args.push(
      '-object', `memory-backend-file,id=ram,size=${command.resources.memoryMib}M,mem-path=${value(path)},share=${shared ? 'on' : 'off'}`,
      '-machine', 'memory-backend=ram',
    );
  }
  return args;
}
