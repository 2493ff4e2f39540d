import { appendFileSync } from 'node:fs';
import type { Logger } from '../host/logger.js';
import type { GlobalOptions } from './global-options.js';

type Level = 'debug' | 'info' | 'warning' | 'error';

function quote(text: string): string {
  return JSON.stringify(text);
}

/**
 * runc's logging: messages go to --log (stderr when absent) as logfmt text, or as JSON lines
 * {"level","msg","time"} with --log-format json, which containerd's runc shim reads back. Errors also go to
 * stderr so that a person sees them.
 */
export class CliLogger implements Logger {
  constructor(private readonly options: GlobalOptions) {}

  private write(level: Level, message: string): void {
    const time = new Date().toISOString();
    const { log, logFormat } = this.options;
    const line = logFormat === 'json' && log
      ? `${JSON.stringify({ level, msg: message, time })}\n`
      : `time=${quote(time)} level=${level} msg=${quote(message)}\n`;
    if (log) {
      try {
        appendFileSync(log, line);
      } catch {
        // The log is best effort; the message still reaches stderr below when it matters.
      }
    }
    if (!log || level === 'error') {
      process.stderr.write(log && logFormat === 'json' ? `time=${quote(time)} level=${level} msg=${quote(message)}\n` : line);
    }
  }

  debug(message: string): void {
    if (this.options.debug) this.write('debug', message);
  }

  info(message: string): void {
    this.write('info', message);
  }

  warn(message: string): void {
    this.write('warning', message);
  }

  error(message: string): void {
    this.write('error', message);
  }
}
