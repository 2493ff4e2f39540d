// kill -9 at the points where something made for a container had not yet been recorded, or where only the one
// killed could have removed it: afterwards (and after delete) no process, cgroup directory or mount is left.
import test from 'ava';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, watch } from 'node:fs';
import { join } from 'node:path';
import { cgroupsLeft } from './helpers/cgroups.js';
import { RUNBOX, TestEnv, mountsUnder, processesMarked } from './helpers/runbox.js';


/** Resolves once `name` exists in `dir` (made by someone else), with inotify: as soon as it appears. */
function appears(dir: string, name: string): Promise<void> {
  return new Promise((resolve) => {
    const watcher = watch(dir, () => {
      if (existsSync(join(dir, name))) {
        watcher.close();
        resolve();
      }
    });
    if (existsSync(join(dir, name))) {
      watcher.close();
      resolve();
    }
  });
}

/** A bundle whose container's cgroups are under a parent of the test's own (so that any left behind is seen). */
function bundleWithCgroups(env: TestEnv, parent: string): string {
  return env.bundle((spec) => {
    spec.process!.args = ['sleep', '1000'];
    spec.linux!.cgroupsPath = `${parent}/ctr`;
  });
}

test('create killed the moment its agent listens leaves no agent, and delete --force leaves nothing', async (t) => {
  const env = new TestEnv(t);
  for (let round = 0; round < 5; round++) {
    const id = env.id();
    const parent = `/runbox-test-${id}`;
    const bundle = bundleWithCgroups(env, parent);
    mkdirSync(env.root, { recursive: true });
    const cli = spawn(RUNBOX, ['--root', env.root, 'create', '--bundle', bundle, id], {
      stdio: 'ignore', env: { ...process.env, RUNBOX_TEST_MARK: id },
    });
    const exited = new Promise((resolve) => cli.once('exit', resolve));
    await appears(env.root, id);
    await appears(join(env.root, id), 'agent.sock');
    cli.kill('SIGKILL');
    await exited;
    // Killed before its state was first written (the container's directory and the agent's socket come first),
    // the create recorded nothing.
    const statePath = join(env.root, id, 'state.json');
    const recorded = (existsSync(statePath) ? JSON.parse(readFileSync(statePath, 'utf8')) : {}) as { sandbox?: unknown };
    t.log(`round ${round}: ${recorded.sandbox ? "recorded" : "not recorded"}`);
    if (!recorded.sandbox) t.deepEqual(await processesMarked(id), [], `round ${round}: an agent the killed create never recorded ends with it`);
    const deleted = await env.run(['delete', '--force', id]);
    t.is(deleted.code, 0, deleted.stderr);
    t.deepEqual(await processesMarked(id), [], `round ${round}: no process is left`);
    t.deepEqual(cgroupsLeft(parent), [], `round ${round}: no cgroup is left`);
    t.deepEqual(mountsUnder(bundle), [], `round ${round}: no mount is left`);
    t.false(existsSync(join(env.root, id)));
  }
});

test('a running container whose agent is killed with SIGKILL leaves no cgroup and no process after delete', async (t) => {
  const env = new TestEnv(t);
  // `run -d`: the init is the agent's child; `create`: the caller's (runc's process tree), so it outlives the agent.
  for (const how of ['run', 'create'] as const) {
    const id = env.id();
    const parent = `/runbox-test-${id}`;
    const bundle = bundleWithCgroups(env, parent);
    const args = how === 'run' ? ['run', '-d', '--bundle', bundle, id] : ['create', '--bundle', bundle, id];
    const made = await env.run(args, { env: { ...process.env, RUNBOX_TEST_MARK: id } });
    t.is(made.code, 0, made.stderr);
    if (how === 'create') t.is((await env.run(['start', id])).code, 0);
    t.not(cgroupsLeft(parent).length, 0, 'the container has its cgroups');
    const { sandbox } = JSON.parse(readFileSync(join(env.root, id, 'state.json'), 'utf8')) as { sandbox: { agentPid: number } };
    process.kill(sandbox.agentPid, 'SIGKILL');
    const deleted = await env.run(['delete', '--force', id]);
    t.is(deleted.code, 0, deleted.stderr);
    t.deepEqual(cgroupsLeft(parent), [], `${how}: the cgroups the killed agent made are removed`);
    t.deepEqual(await processesMarked(id), [], `${how}: no process is left`);
    t.deepEqual(mountsUnder(bundle), []);
  }
});
