/**
 * Simulated time for a whole stack in one process: the engine, its client and the simulator over
 * loopback HTTP. The clock stands still while anything is under way (a call on the wire, a store
 * write, a promise chain the event loop has not yet run) and jumps to the next timer only when all
 * is quiet. So what happens at a simulated instant does not depend on how fast the host runs it: the
 * figures of a run are the same on a slow host and a fast one; only the wall time differs.
 */
import type { EngineClock } from '../src/engine/clock.js';
import { MinHeap } from '../src/util/min-heap.js';

interface Timer {
  at: number;
  seq: number;
  fn: () => void;
  cleared: boolean;
}

const turn = () => new Promise<void>((resolve) => setImmediate(resolve));

export class VirtualTime implements EngineClock {
  private t: number;
  private seq = 0;
  private readonly timers = new MinHeap<Timer>();
  /** Work under way that the clock must wait for (see {@link track}). */
  private busy = 0;
  private idle: (() => void) | undefined;
  /** Bumped by every timer set or cleared: a turn that changed nothing is a quiet one. */
  private activity = 0;

  constructor(start: number) {
    this.t = start;
  }

  readonly now = (): number => this.t;

  readonly setTimeout = (fn: () => void, ms: number): unknown => {
    const timer: Timer = { at: this.t + Math.max(0, ms), seq: this.seq++, fn, cleared: false };
    this.timers.push(timer);
    this.activity++;
    return timer;
  };

  readonly clearTimeout = (handle: unknown): void => {
    if (handle) (handle as Timer).cleared = true;
    this.activity++;
  };

  /** Holds the clock until `work` settles (a call on the wire, a store write). */
  track<T>(work: Promise<T>): Promise<T> {
    this.busy++;
    this.activity++;
    const done = () => {
      this.busy--;
      this.activity++;
      if (this.busy === 0) this.idle?.();
    };
    work.then(done, done);
    return work;
  }

  /** Resolves `ms` of simulated time from now. */
  sleep(ms: number): Promise<void> {
    return new Promise((resolve) => this.setTimeout(resolve, ms));
  }

  /** Waits until nothing is under way and three turns of the event loop in a row changed nothing. */
  private async quiet(): Promise<void> {
    for (let calm = 0; calm < 3; ) {
      if (this.busy > 0) {
        await new Promise<void>((resolve) => {
          this.idle = resolve;
        });
        this.idle = undefined;
        calm = 0;
        continue;
      }
      const before = this.activity;
      await turn();
      calm = this.activity === before && this.busy === 0 ? calm + 1 : 0;
    }
  }

  /**
   * Runs the simulation: whenever all is quiet, moves the clock to the next timer and fires every
   * timer due then; stops when `done()` holds, when no timer is left, or before the first timer
   * after `until` (the clock then rests at `until`).
   */
  async run(done: () => boolean, until = Number.POSITIVE_INFINITY): Promise<void> {
    for (;;) {
      await this.quiet();
      if (done()) return;
      let next = this.timers.peek();
      while (next?.cleared) {
        this.timers.pop();
        next = this.timers.peek();
      }
      if (!next || next.at > until) {
        if (Number.isFinite(until)) this.t = Math.max(this.t, until);
        return;
      }
      this.t = Math.max(this.t, next.at);
      for (let due = this.timers.peek(); due && due.at <= this.t; due = this.timers.peek()) {
        this.timers.pop();
        if (!due.cleared) due.fn();
      }
    }
  }
}
