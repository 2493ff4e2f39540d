// npm run demo: boots a sandbox from the bundled default image with the runbox CLI and shows each step — in a
// QEMU microVM when QEMU and the guest can run here (under KVM, or TCG emulation), else with the emulated driver.
import { spawnSync } from 'node:child_process';
import { closeSync, cpSync, existsSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { release, tmpdir } from 'node:os';
import { join } from 'node:path';
import { PROJECT_ROOT } from '../host/install-paths.js';
import { guestAssets } from '../drivers/qemu/guest-assets.js';
import { QEMU_BINARY } from '../drivers/qemu/qemu-command.js';
import { defaultSpec } from '../oci/default-spec.js';
import { RuntimeError } from '../errors/errors.js';

const project = PROJECT_ROOT;
const runbox = join(project, 'bin', 'runbox');
const work = mkdtempSync(join(tmpdir(), 'runbox-demo-'));
const root = join(work, 'state');
const bundle = join(work, 'bundle');
const id = `demo-${process.pid}`;

/** Why a microVM cannot run here, or undefined when it can. */
function microVmUnavailable(): string | undefined {
  try {
    guestAssets();
  } catch (error) {
    return (error as Error).message;
  }
  const qemu = spawnSync(QEMU_BINARY, ['--version'], { encoding: 'utf8' });
  return qemu.status === 0 ? undefined : `${QEMU_BINARY} does not run (${qemu.error?.message ?? qemu.stderr.trim()})`;
}

function step(args: string[]): string {
  process.stdout.write(`\n$ runbox ${args.join(' ')}\n`);
  const started = process.hrtime.bigint();
  const result = spawnSync(runbox, ['--root', root, ...args], { encoding: 'utf8' });
  const ms = Number(process.hrtime.bigint() - started) / 1e6;
  process.stdout.write(result.stdout);
  process.stderr.write(result.stderr);
  process.stdout.write(`  (exit ${result.status}, ${ms.toFixed(0)} ms)\n`);
  if (result.status !== 0) throw new RuntimeError(`runbox ${args[0]} failed`);
  return result.stdout;
}

try {
  cpSync(join(project, 'fixtures', 'busybox', 'build', 'rootfs'), join(bundle, 'rootfs'), { recursive: true, verbatimSymlinks: true });
  const spec = defaultSpec();
  spec.process!.terminal = false;
  spec.process!.args = ['sh', '-c', 'echo "hello from a runbox sandbox"; echo "kernel: $(uname -r)"; echo "hostname: $(hostname)"; echo "pid inside: $$"; id; ls /'];
  writeFileSync(join(bundle, 'config.json'), JSON.stringify(spec, null, 2));
  const output = join(work, 'container-output.txt');

  const unavailable = microVmUnavailable();
  const driver = unavailable ? 'emulated' : 'qemu';
  process.stdout.write(`default image: fixtures/busybox (busybox-static), bundle ${bundle}\n`);
  if (unavailable) process.stdout.write(`no microVM here (${unavailable}): falling back to the emulated driver\n`);
  const { annotations } = JSON.parse(step(['features'])) as { annotations: Record<string, string> };
  process.stdout.write(`driver: ${driver}: ${annotations[`io.runbox.driver.${driver}.description`]}\n`);
  if (driver === 'qemu') {
    process.stdout.write(`acceleration on this host: ${annotations['io.runbox.driver.qemu.accel']} (${annotations['io.runbox.driver.qemu.accel.why']})\n`);
  }
  // The container's stdout is create's stdout, as with runc: point it at a file to show it afterwards. runbox's
  // own messages go to the --log file, as containerd has runc's.
  const log = join(work, 'runbox.log');
  process.stdout.write(`\n$ runbox --log ${log} --driver ${driver} create --bundle ${bundle} ${id} > ${output}\n`);
  const outputFd = openSync(output, 'w');
  const started = process.hrtime.bigint();
  const created = spawnSync(runbox, ['--root', root, '--log', log, '--driver', driver, 'create', '--bundle', bundle, id], {
    stdio: ['ignore', outputFd, 'inherit'],
  });
  closeSync(outputFd);
  if (created.status !== 0) throw new RuntimeError('runbox create failed');
  process.stdout.write(`  (exit 0, ${(Number(process.hrtime.bigint() - started) / 1e6).toFixed(0)} ms)\n`);
  if (existsSync(log)) process.stdout.write(`runbox's log (--log):\n${readFileSync(log, 'utf8')}`);
  if (driver === 'qemu') {
    const { sandbox } = JSON.parse(readFileSync(join(root, id, 'state.json'), 'utf8')) as { sandbox: { accel: string; pid: number; template?: string } };
    const how = sandbox.accel === 'kvm' ? 'hardware virtualization' : 'software emulation';
    process.stdout.write(`microVM: QEMU pid ${sandbox.pid}, acceleration ${sandbox.accel} (${how})\n`);
    process.stdout.write(sandbox.template
      ? `  restored from template ${sandbox.template} (a guest booted once and snapshotted; the first VM on this host built it)\n`
      : '  booted its kernel (no template)\n');
  }
  step(['state', id]);
  step(['start', id]);
  for (let i = 0; i < 100 && JSON.parse(step(['state', id])).status !== 'stopped'; i++) {
    spawnSync('sleep', ['0.1']);
  }
  process.stdout.write(`\nwhat the container printed (the host kernel is ${release()}):\n${readFileSync(output, 'utf8')}`);
  step(['delete', id]);
  step(['list']);
} finally {
  spawnSync(runbox, ['--root', root, 'delete', '--force', id]);
  rmSync(work, { recursive: true, force: true });
}
