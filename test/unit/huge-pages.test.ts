// withoutHugePages (src/host/huge-pages.ts): the program started has transparent huge pages off, its caller not.
import test from 'ava';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { withoutHugePages } from '../../src/host/huge-pages.js';

// A kernel built without transparent huge pages shows THP_enabled 0 for every process: nothing to tell apart.
const onThpKernel = existsSync('/sys/kernel/mm/transparent_hugepage') ? test.serial : test.serial.skip;

function thpEnabled(status: string): string | undefined {
  return /^THP_enabled:\s+(\d)$/m.exec(status)?.[1];
}

onThpKernel('a program started withoutHugePages has none, and the caller keeps its own setting', (t) => {
  t.is(thpEnabled(readFileSync('/proc/self/status', 'utf8')), '1');
  const child = withoutHugePages(() => spawnSync('cat', ['/proc/self/status'], { encoding: 'utf8' }));
  t.is(child.status, 0);
  t.is(thpEnabled(child.stdout), '0', 'the program may not have transparent huge pages');
  t.is(thpEnabled(readFileSync('/proc/self/status', 'utf8')), '1', 'the caller may, as before');
});

onThpKernel('a start that throws still gives the caller its setting back', (t) => {
  t.throws(() => withoutHugePages(() => {
    throw new Error('no such program');
  }), { message: 'no such program' });
  t.is(thpEnabled(readFileSync('/proc/self/status', 'utf8')), '1');
});
