// Copies what tsc does not emit (the SQL migrations and the SQLite writer thread, which is plain
// JavaScript so that it starts without a TypeScript loader) next to the compiled stores, and the
// dashboard's page (plain browser files, served as they are) next to the compiled server.
// Usage: node scripts/copy-assets.mjs <outDir>
import { copyFileSync, cpSync } from 'node:fs';

const out = process.argv[2] ?? 'dist';
cpSync('src/stores/sql', `${out}/src/stores/sql`, { recursive: true });
for (const file of ['sqlite-writer.js', 'sqlite-writer.d.ts'])
  copyFileSync(`src/stores/${file}`, `${out}/src/stores/${file}`);
cpSync('src/dashboard/page', `${out}/src/dashboard/page`, { recursive: true });
