// The engine learns what a state means from the machine's tags, not from its name. This pins which
// states carry each tag, so that renaming or moving a state breaks a test here rather than silently
// changing which transitions are written, audited or waited on.
import { readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { StateNode } from 'xstate';
import { IN_FLIGHT_STATES, type LifecycleTag, paymentLifecycleMachine } from '../machines/index.js';

type Node = StateNode<never, never>;

function nodesOf(node: Node): Node[] {
  return [node, ...Object.values(node.states).flatMap((child) => nodesOf(child as Node))];
}

const nodes = nodesOf(paymentLifecycleMachine.root as unknown as Node).filter((n) => n.path.length > 0);
const pathOf = (node: Node) => node.path.join('.');

describe('state tags', () => {
  it('each tag is carried by exactly the states the engine relies on', () => {
    const carriers = (tag: LifecycleTag) =>
      nodes
        .filter((n) => n.tags.includes(tag))
        .map(pathOf)
        .sort();
    expect(carriers('payUndecided')).toEqual(['paying']);
    expect(carriers('pollWait')).toEqual(['awaitingResult.pending']);
    expect(carriers('readByTimer')).toEqual(['awaitingNotification.lastLook', 'awaitingResult.inquiring']);
    expect(carriers('sealed')).toEqual(['cancelling', 'refunding', 'windowClosed']);
    expect(carriers('cancelCall')).toEqual(['cancelling']);
    expect(carriers('cancelRetryWait')).toEqual(['cancelling.retryWait']);
  });

  it('a snapshot in a child state has its parent’s tags', () => {
    const snapshot = paymentLifecycleMachine.resolveState({
      value: { cancelling: 'retryWait' },
      context: {} as never,
    });
    expect(snapshot.hasTag('sealed')).toBe(true);
    expect(snapshot.hasTag('cancelCall')).toBe(true);
    expect(snapshot.hasTag('payUndecided')).toBe(false);
  });

  it('the in-flight gauge’s states are the machine’s compound top-level states', () => {
    const top = Object.values(paymentLifecycleMachine.root.states)
      .filter((n) => n.type === 'compound')
      .map((n) => n.key);
    expect([...IN_FLIGHT_STATES].sort()).toEqual(top.sort());
  });

  it('the engine names no non-final state in its code (it reads tags, timers and the machine’s structure)', () => {
    const names = new Set(nodes.filter((n) => n.type !== 'final').map((n) => n.key));
    const dir = resolve(import.meta.dirname, '../src/engine');
    const found: string[] = [];
    for (const file of readdirSync(dir).filter((f) => f.endsWith('.ts'))) {
      // String literals only: a state may be named in a comment.
      const text = readFileSync(join(dir, file), 'utf8')
        .replace(/\/\*[\s\S]*?\*\//g, '')
        .replace(/\/\/.*$/gm, '');
      for (const match of text.matchAll(/'([A-Za-z.]+)'/g)) {
        const literal = match[1] as string;
        if (literal.split('.').some((part) => names.has(part))) found.push(`${file}: '${literal}'`);
      }
    }
    expect(found).toEqual([]);
  });
});
