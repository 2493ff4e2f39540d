// Malformed input to the lower modules fails with the class (and code) a caller switches on, its words kept:
// config.json's values are SpecErrors (the shim answers INVALID_ARGUMENT), command-line values UsageErrors.
import test, { type ExecutionContext } from 'ava';
import { ErrorCode } from '../../src/errors/errors.js';
import { parseSize } from '../../src/cli/parse-size.js';
import { vmResources } from '../../src/drivers/qemu/qemu-resources.js';
import { parsePlatform } from '../../src/image/platform.js';
import { capabilityMask } from '../../src/oci/capabilities.js';
import { rootfsPropagation } from '../../src/oci/mount-options.js';
import { rlimitNumber } from '../../src/oci/rlimits.js';
import type { Spec } from '../../src/oci/spec.js';

function refused(t: ExecutionContext, code: string, message: string, run: () => unknown): void {
  const error = t.throws(run);
  t.is((error as Error & { code?: string }).code, code, message);
  t.is(error?.message, message);
}

test('config.json values runbox cannot use are SpecErrors', (t) => {
  refused(t, ErrorCode.SPEC, 'unknown capability "CAP_NOPE" in process.capabilities.bounding', () => capabilityMask(['CAP_NOPE'], 'bounding'));
  refused(t, ErrorCode.SPEC, 'unknown rlimit type "RLIMIT_NOPE" in process.rlimits', () => rlimitNumber('RLIMIT_NOPE'));
  refused(t, ErrorCode.SPEC, 'invalid linux.rootfsPropagation "sideways"', () => rootfsPropagation('sideways'));
  const spec = { ociVersion: '1.0.2', linux: { resources: { cpu: { cpus: '3-1' } } } } as unknown as Spec;
  refused(t, ErrorCode.SPEC, 'linux.resources.cpu.cpus "3-1" has a range that runs backwards', () => vmResources(spec));
});

test('command-line values runbox cannot read are UsageErrors', (t) => {
  refused(t, ErrorCode.USAGE, 'invalid size "12x": want a number with an optional K, M, G or T suffix', () => parseSize('12x'));
  refused(t, ErrorCode.USAGE, 'invalid platform "linux": want os/architecture[/variant]', () => parsePlatform('linux'));
});
