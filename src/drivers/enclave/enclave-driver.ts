// The enclave driver: every container in a confidential microVM. It is the qemu driver's microVM with a TEE behind
// it (here a vTPM: one swtpm per sandbox) whose launch is measured before the guest runs (launch-measurement.ts),
// whose guest agent measures the create request it is given (initdata) and obeys the policy in it, and whose
// secrets come from a key broker only to a guest whose evidence matches the reference values.
import { rmSync } from 'node:fs';
import { SandboxError } from '../../errors/errors.js';
import type { AgentClient } from '../../agent-client/agent-client.js';
import { HOOK_STATE_LIMIT } from '../../agent-client/agent-sandbox.js';
import { connectedPair, isServed } from '../../host/unix-socket.js';
import { KBS_SOCKET } from '../../attestation/kbs-protocol.js';
import type { Spec } from '../../oci/spec.js';
import type { DriverCapabilities, SandboxConfig } from '../../sandbox/driver.js';
import { type Accel } from '../qemu/qemu-accel.js';
import type { Guest } from '../qemu/guest-assets.js';
import { QemuDriver, type VmAdditions } from '../qemu/qemu-driver.js';
import { value } from '../qemu/qemu-command.js';
import { EXTRA_FD_BASE } from '../qemu/qemu-process.js';
import { vmResources } from '../qemu/qemu-resources.js';
import type { FirstContainer, QemuHandle, QemuSandbox } from '../qemu/qemu-sandbox.js';
import { podMember } from '../qemu/pod-in-vm.js';
import { isLazyRootfs } from '../../lazy-loader/lazy-disk.js';
import { TEMPLATE_ANNOTATION } from '../qemu/qemu-template.js';
import { enclaveLaunch } from './enclave-guest.js';
import { containerPolicy } from './enclave-policy.js';
import { EnclaveSandbox } from './enclave-sandbox.js';
import { chosenTee, TEE_ANNOTATION } from './enclave-tee.js';
import { teeAvailability } from './tee-backends.js';
import { TEE_TYPES } from '../../attestation/reference-values.js';
import { requestedSecrets } from './enclave-secrets.js';
import { launchEvents } from './launch-measurement.js';
import { fillVerityRootfs, verityFile } from './rootfs-verity.js';
import { swtpmForQemu, vtpmDir } from './swtpm.js';
import { provisionVtpm } from './vtpm-provision.js';

/** The fds QEMU inherits: the TPM's control channel, swtpm's end and QEMU's (qemu-process.ts's EXTRA_FD_BASE on). */
const SWTPM_CTRL_FD = EXTRA_FD_BASE;
const QEMU_TPM_FD = EXTRA_FD_BASE + 1;

/** config.json's annotation naming the key broker's socket (else RUNBOX_ENCLAVE_KBS, else /run/runbox-kbs/kbs.sock). */
export const KBS_ANNOTATION = 'io.runbox.enclave.kbs';

export function kbsSocketFor(spec: Spec): string {
  return spec.annotations?.[KBS_ANNOTATION] ?? KBS_SOCKET;
}

/** A word for sh -c, whatever it holds. */
function shellWord(word: string): string {
  return `'${word.replaceAll("'", "'\\''")}'`;
}

export class EnclaveDriver extends QemuDriver {
  override readonly name = 'enclave';
  override readonly capabilities: DriverCapabilities = {
    isolation: 'enclave',
    description: 'a confidential QEMU microVM per container: its launch measured into a TEE (a vTPM here), its agent bound by '
      + 'a measured policy, its secrets released by a key broker only to a guest whose evidence matches the reference values',
    pause: false,
    exec: true,
    terminal: true,
    ownKernel: true,
    hookStateLimit: HOOK_STATE_LIMIT,
    cgroups: true,
  };

  override async boot(config: SandboxConfig) {
    // What the container asks of the enclave is checked before anything starts.
    if (podMember(config.spec)) {
      throw new SandboxError('an enclave VM runs one container: a pod\'s containers cannot share one (the enclave driver takes no '
        + 'Kubernetes pod sandbox or pod member)', { containerId: config.id });
    }
    if (isLazyRootfs(config.spec.root!.path)) {
      throw new SandboxError('an enclave\'s rootfs is built into a disk with its dm-verity tree, whose root hash is measured: a lazily '
        + 'served rootfs cannot be; pull the image in full', { containerId: config.id });
    }
    const tee = chosenTee(config.spec);
    const availability = teeAvailability(tee);
    if (!availability.available) throw new SandboxError(`${TEE_ANNOTATION}=${tee}: this host cannot launch it: ${availability.why}`, { containerId: config.id });
    if (requestedSecrets(config.spec.annotations).length) {
      const kbs = kbsSocketFor(config.spec);
      if (!(await isServed(kbs))) {
        throw new SandboxError(`the container asks for secrets, and no key broker answers on ${kbs} (\`runbox enclave kbs serve\` runs one; `
          + `${KBS_ANNOTATION} or RUNBOX_ENCLAVE_KBS names another)`, { containerId: config.id });
      }
    }
    if (config.bundle !== undefined) {
      const policy = containerPolicy(config.spec, config.bundle);
      if (!policy.output && config.stdio === 'inherit') {
        config.log?.('the enclave\'s policy does not let the host read the container\'s output: its stdout and stderr go to '
          + '/dev/null in the VM ("output": true in the policy file lets them through)');
      }
    }
    return super.boot(config);
  }

  /** The rootfs image with its dm-verity hash tree, whose root hash the create request carries (rootfs-verity.ts). */
  protected override fillRootfs(config: SandboxConfig, disk: string): Promise<number> {
    return fillVerityRootfs(config.spec.root!.path, disk, config.dir);
  }

  protected override guest(config: SandboxConfig): Omit<Guest, 'pod'> {
    return { ...enclaveLaunch(config.spec), resources: vmResources(config.spec) };
  }

  /**
   * Never a template: a clone would wake with its template's memory (the guest kernel's and the agent's secrets and
   * random state, shared by every clone) and without a TPM that measured its launch.
   */
  protected override templatesFor(config: SandboxConfig): boolean {
    if (config.spec.annotations?.[TEMPLATE_ANNOTATION] === 'on') {
      throw new SandboxError(`${TEMPLATE_ANNOTATION}=on: an enclave VM is never restored from a template (clones share the `
        + 'template\'s memory and random state, and their TPM measured no launch of their own): it boots', { containerId: config.id });
    }
    return false;
  }

  /** A vTPM of its own with the launch measured, whose swtpm QEMU starts as its child (it dies with QEMU). */
  protected override async additions(config: SandboxConfig, guest: Guest, _accel: Accel): Promise<VmAdditions> {
    const stateDir = vtpmDir(config.dir);
    rmSync(stateDir, { recursive: true, force: true }); // a KVM probe's that failed
    try {
      await provisionVtpm(stateDir, launchEvents(guest));
    } catch (error) {
      throw new SandboxError(`cannot prepare the enclave's vTPM: ${(error as Error).message}`, { containerId: config.id });
    }
    const [swtpmEnd, qemuEnd] = await connectedPair();
    const swtpm = swtpmForQemu(stateDir, SWTPM_CTRL_FD).map(shellWord).join(' ');
    // The key broker's socket, when there are secrets: the guest speaks HTTP to it over the `kbs` port, and QEMU
    // carries the bytes; nothing on the host reads them (they are JWEs to the guest's TEE key anyway).
    const kbs = requestedSecrets(config.spec.annotations).length
      ? [{ id: 'kbs', chardev: `socket,path=${value(kbsSocketFor(config.spec))}`, name: 'kbs' }]
      : [];
    return {
      devices: {
        args: ['-chardev', `socket,id=tpmctrl,fd=${QEMU_TPM_FD}`, '-tpmdev', 'emulator,id=tpm0,chardev=tpmctrl', '-device', 'tpm-tis,tpmdev=tpm0'],
        ports: kbs,
      },
      inherit: [swtpmEnd, qemuEnd],
      // swtpm is forked by what becomes QEMU (the same process, exec'd), so QEMU is its parent and its death kills it.
      launcher: (argv) => ['/bin/sh', '-c', `${swtpm} ${QEMU_TPM_FD}<&- & exec "$@" ${SWTPM_CTRL_FD}<&-`, 'sh', ...argv],
      release: () => {
        swtpmEnd.destroy();
        qemuEnd.destroy();
      },
    };
  }

  protected override sandboxOver(
    handle: QemuHandle, client: AgentClient, destroy: () => Promise<void>, gone: () => Promise<void>, first?: FirstContainer,
  ): QemuSandbox {
    return new EnclaveSandbox(handle, client, destroy, gone, first);
  }

  /** Which TEEs this host gives (`io.runbox.driver.enclave.tees`), and for each, what it has or lacks. */
  override hostOutlook(): Record<string, string> {
    const outlook: Record<string, string> = {};
    const available: string[] = [];
    for (const tee of TEE_TYPES) {
      const { available: yes, why } = teeAvailability(tee);
      if (yes) available.push(tee);
      outlook[`io.runbox.driver.enclave.tee.${tee}`] = `${yes ? 'available' : 'unavailable'}: ${why}`;
    }
    return { 'io.runbox.driver.enclave.tees': available.join(',') || 'none', ...outlook };
  }

  override async cleanup(handle: Parameters<QemuDriver['cleanup']>[0]): Promise<void> {
    await super.cleanup(handle);
    removeEnclaveFiles(this.asVm(handle).dir);
  }

  override async abandonedBoot(dir: string): Promise<void> {
    await super.abandonedBoot(dir);
    removeEnclaveFiles(dir);
  }
}

/** What an enclave keeps in its sandbox directory beyond the qemu driver's: its vTPM's state and the verity parameters. */
function removeEnclaveFiles(dir: string): void {
  rmSync(vtpmDir(dir), { recursive: true, force: true });
  rmSync(verityFile(dir), { force: true });
}
