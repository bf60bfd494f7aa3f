// Builds dist/, the directory paddock-server serves at /ui/: the UI's own
// files as they are, plus xterm.js from node_modules. No bundler.
import { cpSync, mkdirSync, rmSync, existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const dist = join(here, 'dist');
const xterm = join(here, 'node_modules', '@xterm');
if (!existsSync(join(xterm, 'xterm'))) {
  console.error('web/build: node_modules is missing; run npm ci in web/');
  process.exit(1);
}
rmSync(dist, { recursive: true, force: true });
mkdirSync(join(dist, 'vendor', 'xterm'), { recursive: true });
for (const f of ['index.html', 'style.css', 'icon.svg', 'app']) cpSync(join(here, f), join(dist, f), { recursive: true });
cpSync(join(xterm, 'xterm', 'lib', 'xterm.mjs'), join(dist, 'vendor', 'xterm', 'xterm.mjs'));
cpSync(join(xterm, 'xterm', 'css', 'xterm.css'), join(dist, 'vendor', 'xterm', 'xterm.css'));
cpSync(join(xterm, 'addon-fit', 'lib', 'addon-fit.mjs'), join(dist, 'vendor', 'xterm', 'addon-fit.mjs'));
