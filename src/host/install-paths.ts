// Where runbox's own files are: the project (or installed package) root, from which dist/ (the agent and the
// launchers included), build/guest/ and proto/ are found. Computed here only: this module sits at dist/src/host/,
// and an esbuild bundle pins every module's import.meta.url to its entry's, which is at the same depth
// (dist/src/cli/, dist/src/shim/).
import { fileURLToPath } from 'node:url';

export const PROJECT_ROOT = fileURLToPath(new URL('../../../', import.meta.url));

/** A path under the project root. */
export function projectPath(...parts: string[]): string {
  return [PROJECT_ROOT.replace(/\/$/, ''), ...parts].join('/');
}
