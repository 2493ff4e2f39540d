// What containerd sees from `containerd-shim-runbox-v2 start` and `delete` without a containerd: the address
// (/run/containerd/s/<sha256(containerd address/namespace/group)>, the group being the pod's annotation when
// config.json has one, however it is spelled in JSON), a shim serving it with mode 0600, one shim per group, and
// a DeleteResponse from `delete`. Most of these runs are served by the C launcher (native/shim/); the odd
// ones fall back to the TypeScript and must give the same answers.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import test, { type ExecutionContext } from 'ava';
import { decodeMessage } from '../src/rpc/protos.js';
import { killShims } from './helpers/containerd.js';
import { PROJECT } from './helpers/runbox.js';

const SHIM = join(PROJECT, 'bin', 'containerd-shim-runbox-v2');
const NAMESPACE = 'launcher-test';

interface Shim {
  bundle: string;
  flags: string[];
}

function setUp(t: ExecutionContext): { dir: string; containerdAddress: string } {
  const dir = mkdtempSync('/tmp/rbx-launch-');
  const containerdAddress = join(dir, 'containerd.sock');
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return { dir, containerdAddress };
}

function bundleWith(t: ExecutionContext, dir: string, containerdAddress: string, id: string, configJson: string): Shim {
  const bundle = join(dir, id);
  mkdirSync(bundle);
  writeFileSync(join(bundle, 'config.json'), configJson);
  const flags = ['-namespace', NAMESPACE, '-address', containerdAddress, '-publish-binary', '/bin/true', '-id', id];
  t.teardown(async () => {
    // The shim started for the test is killed, then cleaned up after as containerd would (`delete`).
    if (existsSync(join(bundle, 'shim.pid'))) await killShims([Number(readFileSync(join(bundle, 'shim.pid'), 'utf8'))]);
    spawnSync(SHIM, [...flags, '-bundle', bundle, 'delete'], { cwd: bundle });
  });
  return { bundle, flags };
}

function start(shim: Shim): { address: string; shimPid: number } {
  const result = spawnSync(SHIM, [...shim.flags, 'start'], { cwd: shim.bundle, encoding: 'utf8', input: '' });
  if (result.status !== 0) throw new Error(`start exited ${result.status}: ${result.stderr}`);
  if (result.stderr !== '') throw new Error(`start wrote to stderr: ${result.stderr}`);
  return { address: result.stdout, shimPid: Number(readFileSync(join(shim.bundle, 'shim.pid'), 'utf8')) };
}

function expectedAddress(containerdAddress: string, group: string): string {
  return `unix:///run/containerd/s/${createHash('sha256').update(`${containerdAddress}/${NAMESPACE}/${group}`).digest('hex')}`;
}

const groups: Array<[string, string, (id: string) => string]> = [
  ['no annotations: the container is its own group', '{"ociVersion":"1.0.2","process":{"args":["true"]}}', (id) => id],
  ['io.runbox.group with JSON escapes', '{"annotations":{"io.runbox.group":"pod-\\u00e9\\"\\/x\\ud83d\\ude00"}}', () => 'pod-é"/x😀'],
  ['the CRI sandbox id wins over io.runbox.group', '{"annotations":{"io.runbox.group":"mine","io.kubernetes.cri.sandbox-id":"cri-pod"}}', () => 'cri-pod'],
  ['of duplicate keys the last counts', '{"annotations":{"io.runbox.group":"first","io.runbox.group":"last"}}', () => 'last'],
  ['annotations nested elsewhere do not count', '{"process":{"annotations":{"io.runbox.group":"wrong"}},"annotations":{"x":[1,{"io.runbox.group":"no"}]}}', (id) => id],
  ['a value that is not a string does not count', '{"annotations":{"io.runbox.group":42}}', (id) => id],
  ['an empty group does not count', '{"annotations":{"io.kubernetes.cri.sandbox-id":"","io.runbox.group":"fallback"}}', () => 'fallback'],
  ['a config.json that is not JSON: its own group', '{"annotations":{"io.runbox.group":"x"}', (id) => id],
  ['a byte order mark: not JSON either', '\ufeff{"annotations":{"io.runbox.group":"x"}}', (id) => id],
];

for (const [title, configJson, group] of groups) {
  test(`start: ${title}`, (t) => {
    const { dir, containerdAddress } = setUp(t);
    const id = `c${process.pid}`;
    const shim = bundleWith(t, dir, containerdAddress, id, configJson);
    const { address, shimPid } = start(shim);
    t.is(address, expectedAddress(containerdAddress, group(id)));
    t.is(readFileSync(join(shim.bundle, 'address'), 'utf8'), address);
    const socket = statSync(address.slice('unix://'.length));
    t.true(socket.isSocket());
    t.is(socket.mode & 0o777, 0o600);
    t.true(readFileSync(`/proc/${shimPid}/cmdline`, 'utf8').includes('containerd-shim-runbox-v2'), 'the shim runs');
  });
}

test('start: a second container of the group gets the serving shim, not a new one', (t) => {
  const { dir, containerdAddress } = setUp(t);
  const config = JSON.stringify({ annotations: { 'io.kubernetes.cri.sandbox-id': `pod-${process.pid}` } });
  const first = start(bundleWith(t, dir, containerdAddress, 'a', config));
  const second = start(bundleWith(t, dir, containerdAddress, 'b', config));
  t.is(second.address, first.address);
  t.is(second.shimPid, first.shimPid);
});

test('delete after a shim that left nothing: a DeleteResponse with the killed status', (t) => {
  const { dir, containerdAddress } = setUp(t);
  const { bundle, flags } = bundleWith(t, dir, containerdAddress, 'gone', '{}');
  const before = Date.now();
  const result = spawnSync(SHIM, [...flags, '-bundle', bundle, 'delete'], { cwd: bundle });
  t.is(result.status, 0, result.stderr.toString());
  t.is(result.stderr.toString(), '');
  const response = decodeMessage('containerd.task.v2.DeleteResponse', result.stdout) as { exitStatus: number; exitedAt: { seconds: number } };
  t.is(response.exitStatus, 137);
  t.true(response.exitedAt.seconds >= Math.floor(before / 1000) && response.exitedAt.seconds <= Date.now() / 1000 + 1);
});
