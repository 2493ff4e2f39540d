// The error module: one code per class, every class a RunboxError, the container named once, and the agent's
// errnos as native/agent/PROTOCOL.md and the kernel number them.
import test from 'ava';
import { readFileSync } from 'node:fs';
import { constants } from 'node:os';
import { Errno } from '../../src/errors/errno.js';
import * as errors from '../../src/errors/errors.js';

const { AgentError, ErrorCode, RunboxError, SandboxError, detailFor } = errors;

const classes = Object.entries(errors).filter(([, value]) => typeof value === 'function' && value.prototype instanceof Error) as
  Array<[string, new (...args: unknown[]) => errors.RunboxError]>;

test('every error class is a RunboxError with a code of its own, and names itself', (t) => {
  const codes = new Map<string, string>();
  for (const [name, Class] of classes) {
    const error = new Class('x', new Error('y'), 'z');
    t.true(error instanceof RunboxError, name);
    t.is(error.name, name);
    t.regex(error.code, /^RUNBOX_ERR(_[A-Z_]+)?$/, name);
    t.false(codes.has(error.code), `${name} shares ${error.code} with ${codes.get(error.code)}`);
    codes.set(error.code, name);
  }
  t.deepEqual([...codes.keys()].sort(), Object.values(ErrorCode).sort(), 'each code of ErrorCode is one class\'s');
});

test('an error about a container names it once, and a caller that names it again takes the detail', (t) => {
  const error = new SandboxError('process not running', { containerId: 'a+b', errno: Errno.ESRCH });
  t.is(error.message, 'container a+b: process not running');
  t.is(detailFor(error, 'a+b'), 'process not running');
  t.is(detailFor(error, 'other'), 'container a+b: process not running');
  t.is(detailFor(new Error('plain'), 'a+b'), 'plain');
});

test('the agent\'s messages name the container asked about: its id becomes a field, the message stays', (t) => {
  const named = new AgentError('container a.b: exec: "/x": no such file', Errno.ENOENT, 'a.b');
  t.is(named.message, 'container a.b: exec: "/x": no such file');
  t.is(named.containerId, 'a.b');
  t.is(named.detail, 'exec: "/x": no such file');
  // `.` is any character to a regular expression, not to the agent.
  const other = new AgentError('container aXb: exec: "/x": no such file', Errno.ENOENT, 'a.b');
  t.is(other.containerId, undefined);
  t.is(other.message, 'container aXb: exec: "/x": no such file');
});

test('the errnos acted on are the ones native/agent/PROTOCOL.md names, with the kernel\'s numbers', (t) => {
  const protocol = readFileSync(new URL('../../../native/agent/PROTOCOL.md', import.meta.url), 'utf8');
  const paragraph = /Errnos worth acting\s+on:([^]*?)\n\n/.exec(protocol)?.[1];
  t.truthy(paragraph, 'PROTOCOL.md lists the errnos worth acting on');
  const documented = Object.fromEntries([...paragraph!.matchAll(/(\d+) \((E[A-Z]+)/g)].map(([, number, name]) => [name, Number(number)]));
  t.deepEqual(documented, { ...Errno });
  for (const [name, number] of Object.entries(Errno)) {
    const kernel = (constants.errno as Record<string, number>)[name];
    if (kernel !== undefined) t.is(kernel, number as number, name);
  }
});
