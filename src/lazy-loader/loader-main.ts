// The lazy loader's processes, started by the CLI (loader-client.ts): `keeper STORE` (detached; it starts the
// server) and `server STORE` (its FUSE descriptor as fd 3, the loader lock as fd 4).
import { LazyServer } from './lazy-server.js';
import { runKeeper } from './lazy-keeper.js';

const [role, store] = process.argv.slice(2);
if (!store || (role !== 'keeper' && role !== 'server')) {
  process.stderr.write('usage: loader-main.js keeper|server STORE\n');
  process.exit(2);
}
if (role === 'keeper') {
  process.exitCode = await runKeeper(store);
} else {
  const idleMs = Number(process.env.RUNBOX_LAZY_IDLE_MS ?? 2000);
  await new LazyServer(store, idleMs).start(3, process.env.RUNBOX_LAZY_TAKE_OVER === '1');
}
