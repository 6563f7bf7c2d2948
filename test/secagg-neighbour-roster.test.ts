/**
 * SecAgg+ with per-device rosters: each device receives the list of every advertiser and only
 * its own and its neighbours' advertisements (SecAggServer.rosterFor). The round still sums
 * exactly with dropouts; a roster that lacks a neighbour's keys, carries keys of a device not
 * listed as an advertiser, or lists an advertiser twice is refused.
 */
import { describe, expect, it } from "vitest";
import { randomBytes } from "node:crypto";
import { generateEd25519 } from "../shared/crypto/index.ts";
import { addInPlace, fromData, zeros } from "../shared/modular/index.ts";
import { chooseParams, SecAggDevice, SecAggServer, type AdvertisedKeys, type SecAggConfig } from "../shared/secagg/index.ts";

const n = 40;
const d = 64;
const p = chooseParams({ cohortSize: n, dropoutFraction: 0.1, corruptFraction: 0.1, minSurvivors: 2, fullGraphBelow: 0 });
const cfg: SecAggConfig = { runId: "r", round: 0, bits: 32, vectorLength: d, threshold: p.threshold, degree: p.degree, roundSeed: randomBytes(32), minSurvivors: 2 };
const ids = Array.from({ length: n }, () => generateEd25519());

function setup() {
  const devices = ids.map((k, i) => new SecAggDevice(cfg, i, { privateKey: k.privateKey }));
  const server = new SecAggServer(cfg, devices.map((_, i) => i), new Map(ids.map((k, i) => [i, k.publicKey])));
  // Device 3 never advertises.
  for (const [i, dev] of devices.entries()) if (i !== 3) server.receiveKeys(dev.advertiseKeys());
  const all = server.closeAdvertise().map((k) => k.index);
  const entry = (k: AdvertisedKeys) => ({ ...k, identityPublicKey: ids[k.index]!.publicRaw });
  return { devices, server, all, entry };
}

describe("SecAgg+ with per-device rosters", () => {
  it("sums exactly when every device gets only its neighbourhood's keys", () => {
    expect(p.degree).toBeLessThan(n - 1);
    const { devices, server, all, entry } = setup();
    for (const i of all) {
      const roster = server.rosterFor(i);
      expect(roster.length).toBe(p.degree + 1);
      server.receiveShares(i, devices[i]!.shareKeys(roster.map(entry), all));
    }
    const inboxes = server.closeShareKeys();
    const inputs = new Map<number, Uint32Array>();
    const plain = zeros(32, d);
    for (const i of all) {
      if (i === 7) continue; // drops after ShareKeys
      const x = fromData(32, d, new Uint32Array(randomBytes(4 * d).buffer));
      inputs.set(i, x.data);
      addInPlace(plain, x);
      server.receiveMaskedInput(i, devices[i]!.maskInput({ bits: 32, length: d, data: new Uint32Array(x.data) }, inboxes.get(i) ?? []));
    }
    const shown = server.closeMaskedInput();
    for (const i of shown.survivors) server.receiveConsistency(devices[i]!.signSurvivors(shown.survivors));
    const req = server.closeConsistency();
    for (const i of shown.survivors) server.receiveUnmask(devices[i]!.unmask(req));
    expect(Buffer.from(server.finish().data.buffer).equals(Buffer.from(plain.data.buffer))).toBe(true);
  });

  it("refuses a roster without a neighbour's keys, with keys of a non-advertiser, or with an advertiser twice", () => {
    const { devices, server, all, entry } = setup();
    const i = all[0]!;
    const roster = server.rosterFor(i).map(entry);
    const neighbour = roster.find((r) => r.index !== i)!.index;
    expect(() => devices[i]!.shareKeys(roster.filter((r) => r.index !== neighbour), all)).toThrow(/lacks the advertised keys of neighbour/);
    const j = all[1]!;
    const jRoster = server.rosterFor(j);
    const unlisted = jRoster.find((r) => r.index !== j)!.index;
    expect(() => devices[j]!.shareKeys(jRoster.map(entry), all.filter((v) => v !== unlisted))).toThrow(/not listed as having advertised/);
    const k = all[2]!;
    expect(() => devices[k]!.shareKeys(server.rosterFor(k).map(entry), [...all, all[5]!])).toThrow(/names one twice/);
  });

  it("the coordinator waits only for the signers that can unmask: exactly those the devices' own check lets through", () => {
    const { devices, server, all, entry } = setup();
    for (const i of all) server.receiveShares(i, devices[i]!.shareKeys(server.rosterFor(i).map(entry), all));
    const inboxes = server.closeShareKeys();
    for (const i of all) server.receiveMaskedInput(i, devices[i]!.maskInput({ bits: 32, length: d, data: new Uint32Array(d) }, inboxes.get(i) ?? []));
    const shown = server.closeMaskedInput();
    // Device x loses all but t − 1 of its neighbourhood's signatures: it must refuse to unmask.
    const x = shown.survivors[0]!;
    const silent = new Set(server.neighbourhood(x).filter((j) => j !== x).slice(0, p.degree + 2 - p.threshold));
    const signers = shown.survivors.filter((i) => !silent.has(i));
    for (const i of shown.survivors) {
      const sig = devices[i]!.signSurvivors(shown.survivors);
      if (!silent.has(i)) server.receiveConsistency(sig);
    }
    const req = server.closeConsistency();
    const able = server.ableToUnmask(signers);
    expect(able).not.toContain(x);
    expect(able.length).toBeGreaterThan(0);
    const willing = signers.filter((i) => {
      try {
        devices[i]!.unmask(req);
        return true;
      } catch (err) {
        expect(String(err)).toMatch(/valid signatures on the survivor set from this device's neighbourhood/);
        return false;
      }
    });
    expect(able).toEqual(willing);
    expect(server.ableToUnmask(shown.survivors)).toEqual(shown.survivors);
  });
});
