import * as Args from '@oclif/core/args';
import { Command } from '@oclif/core/command';
import * as Flags from '@oclif/core/flags';
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { RuntimeError } from '../../errors/errors.js';

const SUBCOMMANDS = ['measure', 'kbs'] as const;
const KBS_SUBCOMMANDS = ['serve', 'put-resource', 'set-reference-values'];

function readStdin(): Buffer {
  try {
    return readFileSync(0);
  } catch (error) {
    throw new RuntimeError(`cannot read stdin: ${(error as Error).message}`);
  }
}

export default class Enclave extends Command {
  static summary = 'Enclaves: `measure BUNDLE` prints the reference values of the bundle\'s enclave on this host (JSON); '
    + '`kbs serve` runs the key broker; `kbs put-resource REPOSITORY/TYPE/TAG` gives it a secret (stdin); '
    + '`kbs set-reference-values NAME` gives it reference values (stdin: measure\'s output).';
  static strict = false;
  static args = {
    command: Args.string({ description: SUBCOMMANDS.join(' | '), required: true, options: [...SUBCOMMANDS] }),
  };
  static flags = {
    socket: Flags.string({ description: 'the key broker\'s socket for guests (default: RUNBOX_ENCLAVE_KBS or /run/runbox-kbs/kbs.sock)' }),
    'admin-socket': Flags.string({ description: 'the key broker\'s admin socket (default: RUNBOX_ENCLAVE_KBS_ADMIN or /run/runbox-kbs/admin.sock)' }),
    'ek-ca': Flags.string({ description: 'a TPM maker CA certificate (PEM) the key broker trusts; repeatable (default: this host\'s vTPM CA)', multiple: true }),
  };

  async run(): Promise<void> {
    const { argv, flags } = await this.parse(Enclave);
    const [command, ...rest] = argv as string[];
    if (command === 'measure') {
      if (rest.length !== 1) throw new RuntimeError('enclave measure takes one argument: the bundle directory');
      const { bundleReferenceValues } = await import('../../drivers/enclave/bundle-reference-values.js');
      process.stdout.write(`${JSON.stringify(await bundleReferenceValues(rest[0]!), null, 2)}\n`);
      return;
    }
    const [kbsCommand, ...args] = rest;
    if (!kbsCommand || !KBS_SUBCOMMANDS.includes(kbsCommand)) throw new RuntimeError(`enclave kbs takes one of ${KBS_SUBCOMMANDS.join(', ')}`);
    const [{ kbsAdmin, serveKeyBroker }, { KBS_ADMIN_SOCKET, KBS_SOCKET }] = await Promise.all([
      import('../../attestation/kbs-http.js'), import('../../attestation/kbs-protocol.js'),
    ]);
    const adminSocket = flags['admin-socket'] ?? KBS_ADMIN_SOCKET;
    if (kbsCommand === 'serve') {
      if (args.length) throw new RuntimeError('enclave kbs serve takes no arguments');
      const [{ KeyBroker }, { ekCa }] = await Promise.all([import('../../attestation/key-broker.js'), import('../../drivers/enclave/vtpm-ek-ca.js')]);
      const trustedCas = flags['ek-ca']?.length
        ? flags['ek-ca'].map((file) => new X509Certificate(readFileSync(file)))
        : [(await ekCa()).cert];
      const broker = new KeyBroker({ trustedCas, log: (line) => process.stderr.write(`kbs: ${line}\n`) });
      const served = await serveKeyBroker(broker, { socket: flags.socket ?? KBS_SOCKET, adminSocket });
      process.stderr.write(`kbs: serving guests on ${flags.socket ?? KBS_SOCKET}, administration on ${adminSocket}\n`);
      await new Promise<void>((resolve) => {
        process.once('SIGTERM', resolve);
        process.once('SIGINT', resolve);
      });
      await served.close();
      return;
    }
    if (args.length !== 1) throw new RuntimeError(`enclave kbs ${kbsCommand} takes one argument`);
    const path = kbsCommand === 'put-resource' ? `/resource/${encodeURIComponent(args[0]!).replaceAll('%2F', '/')}` : `/reference-values/${encodeURIComponent(args[0]!)}`;
    await kbsAdmin(adminSocket, 'PUT', path, readStdin());
  }
}
