import type { AnyStateNode } from 'xstate';
import { paymentLifecycleMachine } from '../machines/payment-lifecycle.js';

/** The statechart as JSON (`machine.toJSON()`), for the Stately editor and other tools. */
export function lifecycleJson(): string {
  return `${JSON.stringify(paymentLifecycleMachine.toJSON(), null, 2)}\n`;
}

interface Edge {
  eventType: string;
  guard?: unknown;
  target?: readonly AnyStateNode[];
}

function eventLabel(eventType: string): string {
  if (eventType === '') return 'always';
  if (eventType.startsWith('xstate.done.actor.')) return 'done';
  if (eventType.startsWith('xstate.error.actor.')) return 'error';
  if (eventType.startsWith('xstate.after.')) return `after ${eventType.split('.')[2]}`;
  return eventType;
}

function guardLabel(guard: unknown): string {
  if (!guard) return '';
  if (typeof guard === 'string') return ` [${guard}]`;
  if (typeof guard === 'object' && guard !== null && 'type' in guard) return ` [${String(guard.type)}]`;
  return ' [guarded]';
}

function edgesOf(node: AnyStateNode): Edge[] {
  const edges: Edge[] = [];
  for (const [eventType, list] of node.transitions) for (const t of list) edges.push({ ...t, eventType });
  for (const t of node.always ?? []) edges.push({ ...t, eventType: '' });
  return edges;
}

function render(node: AnyStateNode, indent: string, lines: string[]): void {
  const children = Object.values(node.states) as AnyStateNode[];
  for (const child of children) {
    if (child.type === 'compound') {
      lines.push(`${indent}state ${child.key} {`);
      render(child, `${indent}  `, lines);
      lines.push(`${indent}}`);
    }
  }
  const initial = node.initial?.target[0];
  if (initial) lines.push(`${indent}[*] --> ${initial.key}`);
  for (const child of children) {
    const invoked = child.invoke.map((i) => (typeof i.src === 'string' ? i.src : 'actor'));
    if (invoked.length > 0) lines.push(`${indent}${child.key} : invokes ${invoked.join(', ')}`);
    for (const edge of edgesOf(child)) {
      const target = edge.target?.[0];
      // Targetless transitions (RESUME bookkeeping, late notifications) change no state: not drawn.
      if (target)
        lines.push(
          `${indent}${child.key} --> ${target.key} : ${eventLabel(edge.eventType)}${guardLabel(edge.guard)}`,
        );
    }
    if (child.type === 'final') lines.push(`${indent}${child.key} --> [*]`);
  }
}

/** The statechart as a Mermaid state diagram, generated from the machine definition itself. */
export function lifecycleMermaid(): string {
  const lines = ['stateDiagram-v2'];
  render(paymentLifecycleMachine.root, '  ', lines);
  return `${lines.join('\n')}\n`;
}

const START = /<!-- lifecycle-diagram:start[^>]*-->/;
const END = '<!-- lifecycle-diagram:end -->';

/** Replaces the block between the lifecycle-diagram markers of a Markdown text with the diagram. */
export function embedDiagram(markdown: string): string {
  const start = START.exec(markdown);
  const end = markdown.indexOf(END);
  if (!start || end < start.index) return markdown;
  const head = markdown.slice(0, start.index + start[0].length);
  return `${head}\n\`\`\`mermaid\n${lifecycleMermaid()}\`\`\`\n${markdown.slice(end)}`;
}
