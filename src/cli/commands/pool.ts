import { readFileSync, rmSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { Command } from '@oclif/core/command';
import * as Flags from '@oclif/core/flags';
import { sweepReserves } from '../../drivers/qemu/vm-reserve.js';
import { isProcessAlive } from '../../host/host-process.js';
import { buildId, memberFailures, POOL_KINDS, poolDirectory, poolMembers, poolSettingsFromEnv, type PoolMemberState } from '../../host/warm-pool.js';

const CLOCK_TICKS_PER_SECOND = 100;
const DRAIN_WAIT_MS = 5000;

/**
 * Ends the pool's idle members (each removes its socket as it leaves, a VM member its VM's directory) and removes
 * what dead ones left.
 */
async function drain(dir: string): Promise<void> {
  const members = poolMembers(dir);
  for (const member of members.filter((m) => m.alive)) {
    try {
      process.kill(member.pid, 'SIGTERM');
    } catch {
      // gone already
    }
  }
  const ended = (member: PoolMemberState) => !isProcessAlive(member.pid, member.startTime);
  for (let waited = 0; waited < DRAIN_WAIT_MS && !members.every(ended); waited += 50) await sleep(50);
  for (const member of members.filter(ended)) rmSync(member.socket, { force: true });
  sweepReserves(dir);
}

export default class Pool extends Command {
  static summary = 'Show the warm pool of pre-started shims and CLI workers (docs/warm-pool.md): its directory, size '
    + 'and idle time, and each pooled process with its build, age and memory; --drain ends the idle ones and clears the dead ones\' sockets.';
  static flags = {
    format: Flags.string({ char: 'f', options: ['table', 'json'], default: 'table', description: 'output format' }),
    drain: Flags.boolean({ description: 'end every idle pooled process and remove dead ones\' sockets (the pool refills at the next start)' }),
  };

  async run(): Promise<void> {
    const { flags } = await this.parse(Pool);
    const dir = poolDirectory();
    if (flags.drain) await drain(dir);
    const uptimeTicks = Number(readFileSync('/proc/uptime', 'utf8').split(' ')[0]) * CLOCK_TICKS_PER_SECOND;
    const members = poolMembers(dir).map((member) => ({
      kind: member.kind,
      pid: member.pid,
      state: member.usable ? 'idle' : member.alive ? 'stale build' : 'dead',
      build: member.build,
      ageSeconds: Math.max(0, Math.round((uptimeTicks - Number(member.startTime)) / CLOCK_TICKS_PER_SECOND)),
      rssKib: member.rssKib ?? 0,
    }));
    const state = {
      directory: dir,
      ...poolSettingsFromEnv(),
      builds: Object.fromEntries(POOL_KINDS.map((kind) => [kind, buildId(kind) ?? null])),
      members,
      lastFailures: memberFailures(dir),
    };
    if (flags.format === 'json') {
      process.stdout.write(`${JSON.stringify(state)}\n`);
      return;
    }
    const lines = [`pool ${dir}: size ${state.size} of each kind, idle time ${state.idleSeconds} s (from the environment; a shim's runtime config file may set its own)`];
    const rows = [['KIND', 'PID', 'STATE', 'BUILD', 'AGE', 'RSS']];
    for (const m of members) rows.push([m.kind, String(m.pid), m.state, m.build, `${m.ageSeconds}s`, `${(m.rssKib / 1024).toFixed(1)} MiB`]);
    const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)));
    lines.push(...rows.map((r) => r.map((cell, c) => cell.padEnd(widths[c]!)).join('   ').trimEnd()));
    for (const [kind, failure] of Object.entries(state.lastFailures)) {
      lines.push(`the last ${kind} member that could not join (pid ${failure.pid}, ${failure.at}): ${failure.message}`);
    }
    process.stdout.write(`${lines.join('\n')}\n`);
  }
}
