import Bundle from './bundle.js';
import Create from './create.js';
import Delete from './delete.js';
import Enclave from './enclave.js';
import Exec from './exec.js';
import Features from './features.js';
import Image from './image.js';
import Kill from './kill.js';
import List from './list.js';
import Pause from './pause.js';
import Pool from './pool.js';
import Ps from './ps.js';
import Resume from './resume.js';
import Run from './run.js';
import Spec from './spec.js';
import Start from './start.js';
import State from './state.js';
import Update from './update.js';

/** oclif's explicit command strategy: no command discovery at run time. */
export const COMMANDS = {
  bundle: Bundle,
  create: Create,
  delete: Delete,
  enclave: Enclave,
  exec: Exec,
  features: Features,
  image: Image,
  kill: Kill,
  list: List,
  pause: Pause,
  pool: Pool,
  ps: Ps,
  resume: Resume,
  run: Run,
  spec: Spec,
  start: Start,
  state: State,
  update: Update,
};
