import { readdirSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';

/** A user as the kernel checks file access: its uid and all its groups. */
export interface FileUser {
  uid: number;
  gids: number[];
}

const READ = 4;
const EXECUTE = 1;

/** The permission bits (rwx) of `mode` that apply to `user`: owner, else group, else others. */
function bitsFor(user: FileUser, stat: { mode: number; uid: number; gid: number }): number {
  if (stat.uid === user.uid) return (stat.mode >> 6) & 7;
  if (user.gids.includes(stat.gid)) return (stat.mode >> 3) & 7;
  return stat.mode & 7;
}

/**
 * The first path on the way to `target` or inside it that `user` cannot use: a directory above it
 * they cannot enter, or, inside it, a directory they cannot list and enter or a file they cannot
 * read. Undefined when there is none. Symbolic links inside are not followed (their targets are
 * checked where they are).
 */
export function firstUnreachable(user: FileUser, target: string, inside = true): string | undefined {
  for (let dir = dirname(target); ; dir = dirname(dir)) {
    if ((bitsFor(user, statSync(dir)) & EXECUTE) === 0) return dir;
    if (dirname(dir) === dir) break;
  }
  return inside ? firstUnreadableInside(user, target) : undefined;
}

function firstUnreadableInside(user: FileUser, path: string): string | undefined {
  const stat = statSync(path, { throwIfNoEntry: true });
  const bits = bitsFor(user, stat);
  if (!stat.isDirectory()) return bits & READ ? undefined : path;
  if ((bits & (READ | EXECUTE)) !== (READ | EXECUTE)) return path;
  for (const entry of readdirSync(path, { withFileTypes: true })) {
    if (entry.isSymbolicLink()) continue;
    const found = firstUnreadableInside(user, join(path, entry.name));
    if (found) return found;
  }
  return undefined;
}
