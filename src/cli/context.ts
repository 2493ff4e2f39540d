import { Runtime } from '../runtime/runtime.js';
import type { GlobalOptions } from './global-options.js';
import { CliLogger } from './log.js';

/** What the global flags set up for the command being run. */
export class CliContext {
  readonly logger: CliLogger;
  private runtimeInstance: Runtime | undefined;

  constructor(readonly options: GlobalOptions) {
    this.logger = new CliLogger(options);
  }

  get runtime(): Runtime {
    this.runtimeInstance ??= new Runtime({
      ...(this.options.root ? { root: this.options.root } : {}),
      ...(this.options.driver ? { driver: this.options.driver } : {}),
      logger: this.logger,
    });
    return this.runtimeInstance;
  }
}

let current: CliContext | undefined;

export function setContext(context: CliContext): void {
  current = context;
}

export function context(): CliContext {
  current ??= new CliContext({ logFormat: 'text', debug: false });
  return current;
}
