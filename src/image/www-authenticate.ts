// The WWW-Authenticate challenge of RFC 7235 as registries send it:
//   Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull"
export interface Challenge {
  scheme: string;
  params: Record<string, string>;
}

export function parseChallenge(header: string): Challenge | undefined {
  const match = /^\s*(\S+)\s*(.*)$/.exec(header);
  if (!match) return undefined;
  const params: Record<string, string> = {};
  const pattern = /([\w-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^,\s]*))\s*,?/g;
  for (let m = pattern.exec(match[2]!); m; m = pattern.exec(match[2]!)) {
    params[m[1]!.toLowerCase()] = m[2] !== undefined ? m[2].replace(/\\(.)/g, '$1') : m[3]!;
  }
  return { scheme: match[1]!.toLowerCase(), params };
}
