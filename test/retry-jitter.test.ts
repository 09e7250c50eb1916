// Full jitter on every retry: a cancel's, a refund's, a check after the cancel window, and the
// inquiry after REQUEST_TRAFFIC_EXCEED_LIMIT each wait a share of their scheduled wait, drawn from the
// payment and the attempt. Payments that failed together then retry spread out, not in lockstep, and
// one lifecycle replays the same waits after a restore.
import { describe, expect, it } from 'vitest';
import { jitterShare, retryWait } from '../machines/index.js';
import { answers, baseInput, LifecycleHarness } from './helpers/lifecycle-harness.js';

/** Counts per tenth of [0, 1). */
function deciles(shares: number[]): number[] {
  const counts = new Array<number>(10).fill(0);
  for (const share of shares) {
    const tenth = Math.min(9, Math.floor(share * 10));
    counts[tenth] = (counts[tenth] ?? 0) + 1;
  }
  return counts;
}

describe('jitterShare and retryWait', () => {
  it('draws shares in [0, 1), evenly spread over near keys, the same for the same key', () => {
    const shares = Array.from({ length: 10_000 }, (_, i) => jitterShare(`cancel:1:PAY-${i}`));
    expect(Math.min(...shares)).toBeGreaterThanOrEqual(0);
    expect(Math.max(...shares)).toBeLessThan(1);
    for (const count of deciles(shares)) expect(count).toBeGreaterThan(850); // 1,000 expected
    expect(jitterShare('cancel:1:PAY-7')).toBe(jitterShare('cancel:1:PAY-7'));
    expect(jitterShare('cancel:1:PAY-7')).not.toBe(jitterShare('cancel:2:PAY-7'));
  });

  it('waits a share of the wait with full jitter, and exactly the wait with none', () => {
    const waits = Array.from({ length: 1_000 }, (_, i) =>
      retryWait(2_000, { retryJitter: 'full' }, `P${i}`, 'cancel', 1),
    );
    expect(Math.min(...waits)).toBeGreaterThanOrEqual(0);
    expect(Math.max(...waits)).toBeLessThan(2_000);
    expect(retryWait(2_000, { retryJitter: 'none' }, 'P1', 'cancel', 1)).toBe(2_000);
  });
});

describe('1,000 lifecycles that fail together', () => {
  const full = { retryJitter: 'full' } as const;

  it('retry their cancels spread over the whole wait, not in lockstep', async () => {
    const retryAt: number[] = [];
    let failedAt = 0;
    for (let i = 0; i < 1_000; i++) {
      const h = new LifecycleHarness(baseInput({ paymentRequestId: `JIT-${i}`, policy: full }));
      h.autoInquiry = () => answers.processing();
      await h.runUntilCallOrFinal(); // polled until expiry, then the cancel goes out
      expect(h.state()).toBe('cancelling.requesting');
      await h.answer(answers.cancelU()); // every cancel fails at the same moment
      failedAt = h.now();
      retryAt.push((h.context().cancel?.nextAttemptAt ?? 0) - failedAt);
    }
    // The first retry is scheduled 1 s after the failure; with full jitter, anywhere in that second.
    // Not in lockstep: at most a handful retry in any one millisecond (all 1,000 did, unjittered).
    const perMs = new Map<number, number>();
    for (const ms of retryAt) perMs.set(ms, (perMs.get(ms) ?? 0) + 1);
    expect(Math.max(...perMs.values())).toBeLessThanOrEqual(8);
    for (const count of deciles(retryAt.map((ms) => ms / 1_000))) expect(count).toBeGreaterThan(60);
    expect(Math.max(...retryAt)).toBeLessThan(1_000);
  });

  it('back off a REQUEST_TRAFFIC_EXCEED_LIMIT inquiry spread out, a share of step × multiplier', async () => {
    const waits: number[] = [];
    for (let i = 0; i < 1_000; i++) {
      const h = new LifecycleHarness(baseInput({ paymentRequestId: `THR-${i}`, policy: full }));
      await h.runUntilCallOrFinal();
      await h.answer(answers.unknown('REQUEST_TRAFFIC_EXCEED_LIMIT'));
      waits.push(h.context().nextInquiryAt - h.now());
    }
    // 2 s × 3, jittered: spread over [0, 6 s).
    expect(Math.max(...waits)).toBeLessThan(6_000);
    for (const count of deciles(waits.map((ms) => ms / 6_000))) expect(count).toBeGreaterThan(60);
  });

  it('an ordinary poll is not jittered: the schedule stays as planned', async () => {
    const h = new LifecycleHarness(baseInput({ policy: full }));
    await h.runUntilCallOrFinal();
    await h.answer(answers.unknown());
    expect(h.context().nextInquiryAt - h.now()).toBe(2_000);
  });
});
