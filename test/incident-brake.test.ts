// The incident brake: sustained overload answers from Alipay+ pace routine polls, and the brake
// releases on its own when answers come back; told once per change, never per call.
import { describe, expect, it } from 'vitest';
import { callSignal, createIncidentBrake } from '../src/engine/incident-brake.js';

describe('callSignal', () => {
  it('REQUEST_TRAFFIC_EXCEED_LIMIT, 5xx, timeouts and failed connections are overload; answers are ok', () => {
    expect(callSignal({ kind: 'answer', result: { resultCode: 'REQUEST_TRAFFIC_EXCEED_LIMIT' } })).toBe(
      'overload',
    );
    expect(callSignal({ kind: 'answer', result: { resultCode: 'SUCCESS' } })).toBe('ok');
    expect(callSignal({ kind: 'answer', result: { resultCode: 'ORDER_NOT_EXIST' } })).toBe('ok');
    expect(callSignal({ kind: 'no-result', reason: 'http-status', httpStatus: 503 })).toBe('overload');
    expect(callSignal({ kind: 'no-result', reason: 'http-status', httpStatus: 404 })).toBe('ok');
    expect(callSignal({ kind: 'no-result', reason: 'timeout' })).toBe('overload');
    expect(callSignal({ kind: 'no-result', reason: 'network' })).toBe('overload');
    expect(callSignal({ kind: 'no-result', reason: 'aborted' })).toBe('other');
    expect(callSignal({ kind: 'no-result', reason: 'bad-signature' })).toBe('other');
  });
});

describe('createIncidentBrake', () => {
  function brakeAt(start = 1_000_000) {
    let now = start;
    const changes: { engaged: boolean; calls: number; overload: number; at: number }[] = [];
    const brake = createIncidentBrake(
      () => now,
      { windowMs: 10_000, minCalls: 20 },
      (engaged, window) => changes.push({ engaged, ...window, at: now }),
    );
    return {
      brake,
      changes,
      tick(ms: number) {
        now += ms;
      },
    };
  }

  it('does not engage on a few failures, nor on a steady low rate of them', () => {
    const { brake, changes, tick } = brakeAt();
    for (let i = 0; i < 19; i++) brake.observe('inquiryPayment', 'overload'); // below minCalls
    expect(brake.engaged).toBe(false);
    tick(11_000); // the window forgets them
    for (let i = 0; i < 200; i++) {
      brake.observe('inquiryPayment', i % 3 === 0 ? 'overload' : 'ok'); // a third fail
      tick(50);
    }
    expect(brake.engaged).toBe(false);
    expect(changes).toEqual([]);
  });

  it('engages once when most answers are overload, and releases once when answers come back', () => {
    const { brake, changes, tick } = brakeAt();
    for (let i = 0; i < 100; i++) {
      brake.observe('inquiryPayment', 'overload');
      tick(100);
    }
    expect(brake.engaged).toBe(true);
    expect(changes).toHaveLength(1); // once per change, not per call
    expect(changes[0]).toMatchObject({ engaged: true, calls: 20, overload: 20 });
    // Answers come back: released once the window's share of overload falls to 20%.
    for (let i = 0; i < 200 && brake.engaged; i++) {
      brake.observe('cancelPayment', 'ok');
      tick(100);
    }
    expect(brake.engaged).toBe(false);
    expect(changes.map((c) => c.engaged)).toEqual([true, false]);
    const released = changes[1] as { calls: number; overload: number };
    expect(released.overload / released.calls).toBeLessThanOrEqual(0.2);
    // Calls that say nothing about Alipay+ (aborted, refused unsigned) count for neither.
    const before = brake.window;
    brake.observe('inquiryPayment', 'other');
    expect(brake.window).toEqual(before);
  });
});
