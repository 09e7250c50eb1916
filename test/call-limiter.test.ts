// Admission control: calls wait for a slot unsigned, and go out by urgency (cancels, then last looks
// and pays, then refunds, then routine polls by deadline), within each API's rate cap.
import { describe, expect, it } from 'vitest';
import {
  admittingClock,
  type CallAdmission,
  CallLimiter,
  type CallUrgency,
} from '../src/engine/call-limiter.js';
import type { EngineClock } from '../src/index.js';

/** A clock that moves only when told: timers fire in due order as it advances. */
function manualClock(start = 1_000_000): EngineClock & { advance(ms: number): void } {
  let now = start;
  let seq = 0;
  const timers = new Map<number, { at: number; fn: () => void }>();
  return {
    now: () => now,
    setTimeout(fn, ms) {
      seq += 1;
      timers.set(seq, { at: now + Math.max(0, ms), fn });
      return seq;
    },
    clearTimeout(handle) {
      timers.delete(handle as number);
    },
    advance(ms) {
      const until = now + ms;
      for (;;) {
        const next = [...timers.entries()].sort((a, b) => a[1].at - b[1].at)[0];
        if (!next || next[1].at > until) break;
        timers.delete(next[0]);
        now = next[1].at;
        next[1].fn();
      }
      now = until;
    },
  };
}

const admission = (urgency: CallUrgency, deadline?: number): CallAdmission => ({
  api:
    urgency === 'cancel'
      ? 'cancelPayment'
      : urgency === 'refund'
        ? 'refund'
        : urgency === 'deadline'
          ? 'pay'
          : 'inquiryPayment',
  urgency,
  ...(deadline === undefined ? {} : { deadline }),
});

/** Queues calls behind one that holds the only slot, then lets them through one at a time. */
async function orderOf(limiter: CallLimiter, queued: [string, CallAdmission][]): Promise<string[]> {
  const order: string[] = [];
  expect(await limiter.acquire(admission('poll'))).toBe('go'); // the slot, taken
  const done = queued.map(([name, a]) =>
    limiter.acquire(a).then((verdict) => {
      expect(verdict).toBe('go');
      order.push(name);
      limiter.release(); // sent and answered at once: the next one's turn
    }),
  );
  expect(limiter.queued).toBe(queued.length);
  limiter.release();
  await Promise.all(done);
  return order;
}

describe('CallLimiter', () => {
  it('a cancel queued behind 200 routine polls is sent first; polls go earliest deadline first', async () => {
    const clock = manualClock();
    const limiter = new CallLimiter({ limit: 1, clock });
    const now = clock.now();
    // Deadlines in a shuffled order, all in the future.
    const polls: [string, CallAdmission][] = Array.from({ length: 200 }, (_, i) => {
      const deadline = now + 60_000 + ((i * 7919) % 200) * 100;
      return [`poll@${deadline}`, admission('poll', deadline)];
    });
    const order = await orderOf(limiter, [
      ...polls,
      ['refund', admission('refund')],
      ['pay', admission('deadline')],
      ['cancel', admission('cancel')],
    ]);
    expect(order.slice(0, 3)).toEqual(['cancel', 'pay', 'refund']);
    const deadlines = order.slice(3).map((name) => Number(name.split('@')[1]));
    expect(deadlines).toHaveLength(200);
    expect(deadlines).toEqual([...deadlines].sort((a, b) => a - b));
  });

  it('within a class, first come first served', async () => {
    const limiter = new CallLimiter({ limit: 1, clock: manualClock() });
    const order = await orderOf(
      limiter,
      ['c1', 'c2', 'c3'].map((name) => [name, admission('cancel')] as [string, CallAdmission]),
    );
    expect(order).toEqual(['c1', 'c2', 'c3']);
  });

  it('a poll whose deadline has come is a last look: ahead of refunds, behind cancels and pays', async () => {
    const clock = manualClock();
    const limiter = new CallLimiter({ limit: 1, clock });
    const now = clock.now();
    const order = await orderOf(limiter, [
      ['refund', admission('refund')],
      ['poll-later', admission('poll', now + 60_000)],
      ['poll-due', admission('poll', now - 1)],
      ['pay', admission('deadline')],
      ['cancel', admission('cancel')],
    ]);
    expect(order).toEqual(['cancel', 'pay', 'poll-due', 'refund', 'poll-later']);
  });

  it('an aborted wait leaves the queue and holds no slot', async () => {
    const limiter = new CallLimiter({ limit: 1, clock: manualClock() });
    expect(await limiter.acquire(admission('poll'))).toBe('go');
    const abort = new AbortController();
    const waiting = limiter.acquire(admission('cancel'), abort.signal);
    const after = limiter.acquire(admission('poll'));
    abort.abort();
    expect(await waiting).toBe('aborted');
    expect(limiter.queued).toBe(1);
    limiter.release();
    expect(await after).toBe('go');
    expect(limiter.inFlight).toBe(1);
  });

  it('a rate cap holds: at most perSecond calls a second after the burst, other APIs unaffected', async () => {
    const clock = manualClock();
    const limiter = new CallLimiter({
      limit: 1_000,
      clock,
      rateCaps: { inquiryPayment: { perSecond: 10, burst: 5 } },
    });
    const start = clock.now();
    const sentAt: number[] = [];
    const calls = Array.from({ length: 65 }, () =>
      limiter.run(
        admission('poll'),
        undefined,
        async () => void sentAt.push(clock.now() - start),
        () => undefined,
      ),
    );
    // A cancel is not held back by the inquiries' cap.
    let cancelAt: number | undefined;
    const cancel = limiter.run(
      admission('cancel'),
      undefined,
      async () => {
        cancelAt = clock.now() - start;
      },
      () => undefined,
    );
    await cancel;
    expect(cancelAt).toBe(0);
    for (let t = 0; t < 7_000; t += 50) {
      clock.advance(50);
      await new Promise((resolve) => setImmediate(resolve));
    }
    await Promise.all(calls);
    expect(sentAt).toHaveLength(65);
    expect(sentAt.filter((at) => at === 0)).toHaveLength(5); // the burst
    // In every window of one second, at most the burst plus one second's worth.
    for (const from of sentAt) {
      const inWindow = sentAt.filter((at) => at >= from && at < from + 1_000).length;
      expect(inWindow).toBeLessThanOrEqual(15);
    }
    // Sustained: 60 after the burst take about 6 s at 10 a second, not less.
    expect(Math.max(...sentAt)).toBeGreaterThanOrEqual(5_900);
    expect(Math.max(...sentAt)).toBeLessThanOrEqual(6_100);
  });
});

describe('CallLimiter under the incident brake, and its give-up time', () => {
  it('a pace on every call holds the rate, and what it lets through goes most urgent first', async () => {
    const clock = manualClock();
    const limiter = new CallLimiter({ limit: 1_000, clock });
    limiter.paceCalls(10); // burst 1: one call, then one every 100 ms
    const start = clock.now();
    const sent: [string, number][] = [];
    const call = (name: string, a: CallAdmission) =>
      limiter.run(
        a,
        undefined,
        async () => void sent.push([name, clock.now() - start]),
        () => undefined,
      );
    const all = [
      ...Array.from({ length: 20 }, (_, i) => call(`poll${i}`, admission('poll', start + 60_000 + i))),
      call('pay', admission('deadline')),
      call('cancel', admission('cancel')),
    ];
    await new Promise((resolve) => setImmediate(resolve)); // the first call runs, at 0
    for (let t = 0; t < 3_000; t += 50) {
      clock.advance(50);
      await new Promise((resolve) => setImmediate(resolve));
    }
    await Promise.all(all);
    // The first poll took the one token there was; then the cancel, then the pay, then the polls.
    expect(sent.map(([name]) => name).slice(0, 4)).toEqual(['poll0', 'cancel', 'pay', 'poll1']);
    const times = sent.map(([, at]) => at);
    for (let i = 1; i < times.length; i++)
      expect((times[i] as number) - (times[i - 1] as number)).toBeGreaterThanOrEqual(100);
    // Lifted: the next call goes at once.
    limiter.paceCalls(undefined);
    let at: number | undefined;
    await limiter.run(
      admission('poll'),
      undefined,
      async () => {
        at = clock.now();
      },
      () => undefined,
    );
    expect(at).toBe(clock.now());
  });

  it('a call still waiting at its give-up time is told late, holds no slot, and is never run', async () => {
    const clock = manualClock();
    const limiter = new CallLimiter({ limit: 1, clock });
    expect(await limiter.acquire(admission('poll'))).toBe('go');
    const giveUpAt = clock.now() + 3_000;
    let ran = false;
    const waiting = limiter.run(
      { ...admission('deadline'), giveUpAt },
      undefined,
      async () => {
        ran = true;
        return 'sent';
      },
      (verdict) => verdict,
    );
    clock.advance(2_999);
    expect(limiter.queued).toBe(1);
    clock.advance(1);
    expect(await waiting).toBe('late');
    expect(ran).toBe(false);
    expect(limiter.queued).toBe(0);
    // Already past its give-up time: late at once, without waiting.
    expect(await limiter.acquire({ ...admission('cancel'), giveUpAt: clock.now() })).toBe('late');
    // Granted before it: the give-up timer no longer matters.
    const granted = limiter.acquire({ ...admission('cancel'), giveUpAt: clock.now() + 1_000 });
    limiter.release();
    expect(await granted).toBe('go');
    clock.advance(5_000);
    expect(limiter.inFlight).toBe(1);
  });

  it('first-come admission (the old order, for comparison) sends in order of arrival', async () => {
    const limiter = new CallLimiter({ limit: 1, clock: manualClock(), admission: 'first-come' });
    const order = await orderOf(limiter, [
      ['poll', admission('poll', 1)],
      ['refund', admission('refund')],
      ['cancel', admission('cancel')],
    ]);
    expect(order).toEqual(['poll', 'refund', 'cancel']);
  });
});

describe('admittingClock', () => {
  it('timers that came due while every slot was taken fire by urgency when a slot frees', async () => {
    const clock = manualClock();
    const limiter = new CallLimiter({ limit: 1, clock });
    const actors = admittingClock(clock, limiter);
    expect(await limiter.acquire(admission('poll'))).toBe('go');
    const fired: string[] = [];
    // Each timer starts a call, which takes the free slot at once, as the lifecycles' calls do.
    const fire = (name: string) => () => {
      fired.push(name);
      void limiter.acquire(admission('poll'));
    };
    const owner = (urgency: CallUrgency, deadline?: number) => ({
      timerAdmission: () => ({ urgency, ...(deadline === undefined ? {} : { deadline }) }),
    });
    const now = clock.now();
    actors.setTimeout(fire('poll-late-deadline'), 10, owner('poll', now + 90_000));
    actors.setTimeout(fire('poll-early-deadline'), 20, owner('poll', now + 30_000));
    actors.setTimeout(fire('last-look'), 30, owner('deadline'));
    const dropped = actors.setTimeout(fire('dropped'), 35, owner('cancel'));
    actors.setTimeout(fire('cancel-retry'), 40, owner('cancel'));
    actors.setTimeout(() => fired.push('unowned'), 50); // not a lifecycle's: never held back
    clock.advance(100);
    expect(fired).toEqual(['unowned']);
    actors.clearTimeout(dropped);
    // One fires each time the slot frees.
    for (let i = 0; i < 4; i++) {
      limiter.release();
      await new Promise((resolve) => queueMicrotask(() => resolve(undefined)));
      expect(fired).toHaveLength(2 + i);
    }
    expect(fired).toEqual([
      'unowned',
      'cancel-retry',
      'last-look',
      'poll-early-deadline',
      'poll-late-deadline',
    ]);
  });
});
