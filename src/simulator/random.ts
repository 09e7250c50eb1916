/** A small seeded PRNG (mulberry32): the simulator's faults and mixes must be reproducible from a seed. */
export type Random = () => number;

export function seededRandom(seed: number): Random {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A stable 32-bit hash of a string (FNV-1a), to derive one stream per payment from one seed. */
export function hashString(text: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    hash ^= text.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193);
  }
  return hash >>> 0;
}

/** A random stream for one key (a payment, a call) under one seed: independent of arrival order. */
export function streamFor(seed: number, key: string): Random {
  return seededRandom(hashString(`${seed}:${key}`));
}

export function between(random: Random, min: number, max: number): number {
  return Math.round(min + random() * (max - min));
}

export function pick<T>(random: Random, items: readonly T[]): T {
  return items[Math.floor(random() * items.length) % items.length] as T;
}
