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

  it('while engaged, paces every call at a fifth above what Alipay+ answered, doubles it after a clean second, and lifts it on release', () => {
    let now = 1_000_000;
    const paces: (number | undefined)[] = [];
    const changes: boolean[] = [];
    const brake = createIncidentBrake(
      () => now,
      { windowMs: 10_000, minCalls: 20 },
      (engaged) => changes.push(engaged),
      (pace) => paces.push(pace),
    );
    // 10 s of an Alipay+ that answers 10 calls a second and refuses 30 more.
    for (let second = 0; second < 10; second++) {
      for (let i = 0; i < 40; i++) {
        brake.observe('inquiryPayment', i < 10 ? 'ok' : 'overload');
        now += 25;
      }
    }
    expect(changes).toEqual([true]);
    // Every second after engaging: 10 answered → 12 a second.
    expect(paces.length).toBeGreaterThan(1);
    expect(paces.at(-1)).toBeCloseTo(12, 5);
    expect(brake.callsPerSecond).toBeCloseTo(12, 5);
    // Sending at the pace with a few refusals keeps it engaged (the pace binds), not released.
    for (let second = 0; second < 20; second++) {
      for (let i = 0; i < 12; i++) {
        brake.observe('cancelPayment', i < 10 ? 'ok' : 'overload');
        now += 1_000 / 12;
      }
    }
    expect(changes).toEqual([true]);
    expect(brake.callsPerSecond).toBeCloseTo(12, 5);
    // Answers come back: each clean second doubles the pace; released once the engine sends less
    // than the pace allows and the window is clean enough: the pace is lifted.
    for (let second = 0; second < 20 && brake.engaged; second++) {
      for (let i = 0; i < 12; i++) {
        brake.observe('cancelPayment', 'ok');
        now += 1_000 / 12;
      }
    }
    expect(changes).toEqual([true, false]);
    expect(paces.at(-1)).toBeUndefined();
    expect(paces.filter((p) => p !== undefined && p > 12).length).toBeGreaterThan(0);
    expect(brake.callsPerSecond).toBeUndefined();
  });

  it('in a full outage the pace falls to minCallsPerSecond: the probes', () => {
    let now = 1_000_000;
    const paces: (number | undefined)[] = [];
    const brake = createIncidentBrake(
      () => now,
      { minCallsPerSecond: 2 },
      () => undefined,
      (p) => paces.push(p),
    );
    for (let i = 0; i < 100; i++) {
      brake.observe('pay', 'overload');
      now += 100;
    }
    expect(brake.engaged).toBe(true);
    expect(paces.every((p) => p === 2)).toBe(true);
  });
});
