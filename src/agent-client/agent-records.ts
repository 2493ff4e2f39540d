// Records of the agent protocol: `key=value` NUL-terminated, keys may repeat (lists keep their order).
import { SpecError } from '../errors/errors.js';

export { UNIT_SEPARATOR } from '../generated/facts.js';

export type RecordList = Array<[string, string]>;

export function encodeRecords(records: RecordList): Buffer {
  let text = '';
  for (const [key, value] of records) {
    if (value.includes('\0')) throw new SpecError(`agent record ${key} holds a NUL byte`);
    text += `${key}=${value}\0`;
  }
  return Buffer.from(text, 'utf8');
}

export class Records {
  constructor(readonly list: RecordList) {}

  static decode(payload: Buffer): Records {
    const list: RecordList = [];
    for (const item of payload.toString('utf8').split('\0')) {
      if (item === '') continue;
      const eq = item.indexOf('=');
      if (eq <= 0) throw new Error(`malformed agent record "${item.slice(0, 40)}"`);
      list.push([item.slice(0, eq), item.slice(eq + 1)]);
    }
    return new Records(list);
  }

  get(key: string): string | undefined {
    return this.list.find(([k]) => k === key)?.[1];
  }

  all(key: string): string[] {
    return this.list.filter(([k]) => k === key).map(([, v]) => v);
  }

  number(key: string): number {
    const value = this.get(key);
    if (value === undefined || !/^-?\d+$/.test(value)) throw new Error(`agent response lacks a numeric "${key}"`);
    return Number(value);
  }
}
