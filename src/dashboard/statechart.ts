import type { AnyStateNode } from 'xstate';
import { paymentLifecycleMachine } from '../../machines/payment-lifecycle.js';

/** One state of the lifecycle statechart, as the dashboard draws it. */
export interface StatechartNode {
  /** The dotted path, as stored lifecycles name their state: `awaitingResult.pending`. */
  id: string;
  /** The state's own name: `pending`. */
  key: string;
  type: 'atomic' | 'compound' | 'final';
  /** The calls this state makes while it is active (`inquiryPayment`, `cancelPayment`, ...). */
  invokes: string[];
  /** The child entered first, for compound states. */
  initial?: string;
  children: StatechartNode[];
}

/** One transition that changes state, labelled as the Mermaid diagram labels it. */
export interface StatechartEdge {
  id: string;
  source: string;
  target: string;
  label: string;
}

export interface Statechart {
  /** The machine's initial top-level state. */
  initial?: string;
  nodes: StatechartNode[];
  edges: StatechartEdge[];
}

const pathOf = (node: AnyStateNode) => node.path.join('.');

function eventLabel(eventType: string): string {
  if (eventType === '') return 'always';
  if (eventType.startsWith('xstate.done.actor.')) return 'done';
  if (eventType.startsWith('xstate.error.actor.')) return 'error';
  if (eventType.startsWith('xstate.after.')) return `after ${eventType.split('.')[2]}`;
  return eventType;
}

function guardName(guard: unknown): string | undefined {
  if (typeof guard === 'string') return guard;
  if (typeof guard === 'object' && guard !== null && 'type' in guard) return String(guard.type);
  return guard ? 'guarded' : undefined;
}

function typeOf(node: AnyStateNode): StatechartNode['type'] {
  if (node.type === 'final') return 'final';
  return node.type === 'compound' ? 'compound' : 'atomic';
}

function walk(parent: AnyStateNode, edges: StatechartEdge[]): StatechartNode[] {
  const nodes: StatechartNode[] = [];
  for (const child of Object.values(parent.states) as AnyStateNode[]) {
    const id = pathOf(child);
    const transitions: { eventType: string; guard?: unknown; target?: readonly AnyStateNode[] }[] = [];
    for (const [eventType, list] of child.transitions)
      for (const t of list) transitions.push({ ...t, eventType });
    for (const t of child.always ?? []) transitions.push({ ...t, eventType: '' });
    for (const t of transitions) {
      const target = t.target?.[0];
      // A transition without a target changes no state (RESUME bookkeeping): the chart leaves it out.
      if (!target) continue;
      const guard = guardName(t.guard);
      const label = guard ? `${eventLabel(t.eventType)} [${guard}]` : eventLabel(t.eventType);
      edges.push({ id: `e${edges.length}`, source: id, target: pathOf(target), label });
    }
    const node: StatechartNode = {
      id,
      key: child.key,
      type: typeOf(child),
      invokes: child.invoke.map((i) => (typeof i.src === 'string' ? i.src : 'actor')),
      children: walk(child, edges),
    };
    const initial = child.initial?.target[0];
    if (initial) node.initial = pathOf(initial);
    nodes.push(node);
  }
  return nodes;
}

/** The lifecycle statechart as nested states and labelled edges, walked from the machine definition. */
export function lifecycleStatechart(): Statechart {
  const edges: StatechartEdge[] = [];
  const nodes = walk(paymentLifecycleMachine.root, edges);
  const chart: Statechart = { nodes, edges };
  const initial = paymentLifecycleMachine.root.initial?.target[0];
  if (initial) chart.initial = pathOf(initial);
  return chart;
}
