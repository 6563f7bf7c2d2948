/**
 * Lightweight devices for the reconnect figure of `npm run bench:failover` (issue #18 §6): real
 * gRPC clients over TLS, each with its own ed25519 identity, single-use enrollment and signed
 * requests, holding only a Subscribe stream (RoundSubscription: the coordinator's retry window
 * when it sent one, else full-jitter backoff with the client's default cap). They subscribe as
 * not eligible, so no run samples them. They live in device processes (this file run with
 * `--fleet JSON`, as bench/load.bench.ts does), which print each connect and disconnect with its
 * time; the parent counts how many are back after a cut.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { readFileSync } from "node:fs";
import { generateEd25519, privateKeyFromPem } from "../shared/crypto/index.ts";
import { CoordinatorClient } from "../client/transport/coordinator-client.ts";
import { RoundSubscription } from "../client/transport/round-subscription.ts";

interface FleetInit {
  address: string;
  caFile: string;
  adminKeyFile: string;
  count: number;
  offset: number;
}

/** A device process: enrolls and subscribes `count` devices; prints `+i t` / `-i t` per status change. */
async function fleetProcess(init: FleetInit): Promise<void> {
  const admin = new CoordinatorClient({ address: init.address, caFile: init.caFile, credentials: { keyId: "admin-1", privateKey: privateKeyFromPem(readFileSync(init.adminKeyFile, "utf8")).privateKey } });
  const subs: RoundSubscription[] = [];
  let lines = "";
  const flush = setInterval(() => {
    if (lines) process.stdout.write(lines);
    lines = "";
  }, 20);
  for (let i = 0; i < init.count; i++) {
    const idx = init.offset + i;
    const identity = generateEd25519();
    const client = new CoordinatorClient({ address: init.address, caFile: init.caFile });
    // Each enrollment on its own, retried: on a loaded machine a TLS handshake through the proxy can time out.
    const e = await retried(async () => {
      const { token } = await admin.unary<object, { token: string }>("Enrollment", "CreateToken", { ttlSeconds: 600 });
      return client.unary<object, { deviceId: string }>("Enrollment", "Enroll", { token, identityPublicKey: Buffer.from(identity.publicRaw), deviceLabel: `reconnect-${idx}` });
    });
    client.credentials = { keyId: e.deviceId, privateKey: identity.privateKey };
    let up = false;
    const s = new RoundSubscription({
      client, backend: "none", eligible: () => false, onEvent: async () => undefined,
      onStatus: (st) => {
        if (st.connected === up) return;
        up = st.connected;
        lines += `${up ? "+" : "-"}${idx} ${Date.now()}\n`;
      },
    });
    s.start();
    subs.push(s);
  }
  admin.close();
  process.on("SIGTERM", () => {
    clearInterval(flush);
    for (const s of subs) s.stop();
    process.exit(0);
  });
}

/** `fn`, tried again after UNAVAILABLE / DEADLINE_EXCEEDED (gRPC 14 / 4) up to 10 times. */
async function retried<T>(fn: () => Promise<T>): Promise<T> {
  for (let i = 0; ; i++) {
    try {
      return await fn();
    } catch (err) {
      const code = (err as { code?: number }).code;
      if (i >= 9 || (code !== 14 && code !== 4)) throw err;
      await new Promise((r) => setTimeout(r, 500 * (i + 1)));
    }
  }
}

export class ReconnectFleet {
  /** Set when a device process died: every wait fails with it. */
  private failed: Error | undefined;

  /** Time each device last came up (ms since epoch), and whether it is up now. */
  private readonly lastUp: number[];
  private readonly isUp: boolean[];

  private constructor(
    readonly size: number,
    private readonly procs: ChildProcess[],
  ) {
    this.lastUp = new Array<number>(size).fill(0);
    this.isUp = new Array<boolean>(size).fill(false);
  }

  /** Enrolls `n` devices through `address` in `procs` device processes; resolves when all are up. */
  static async start(o: { address: string; caFile: string; adminKeyFile: string; n: number; procs: number }): Promise<ReconnectFleet> {
    const per = Math.ceil(o.n / o.procs);
    const children: ChildProcess[] = [];
    const fleet = new ReconnectFleet(o.n, children);
    for (let w = 0; w * per < o.n; w++) {
      const init: FleetInit = { address: o.address, caFile: o.caFile, adminKeyFile: o.adminKeyFile, count: Math.min(per, o.n - w * per), offset: w * per };
      const p = spawn(process.execPath, ["--import", "tsx", new URL(import.meta.url).pathname, "--fleet", JSON.stringify(init)], { stdio: ["ignore", "pipe", "inherit"] });
      children.push(p);
      p.once("exit", (code, sig) => (fleet.failed ??= new Error(`reconnect device process ${w} exited (${code ?? sig})`)));
      let rest = "";
      p.stdout!.on("data", (d: Buffer) => {
        const text = rest + d.toString();
        const cut = text.lastIndexOf("\n");
        rest = text.slice(cut + 1);
        for (const line of text.slice(0, cut + 1).split("\n")) fleet.record(line);
      });
    }
    await fleet.waitUp(o.n, 0, 20 * 60_000);
    return fleet;
  }

  private record(line: string): void {
    const m = /^([+-])(\d+) (\d+)$/.exec(line);
    if (!m) return;
    const i = Number(m[2]);
    this.isUp[i] = m[1] === "+";
    if (this.isUp[i]) this.lastUp[i] = Math.max(this.lastUp[i]!, Number(m[3]));
  }

  /** Devices up now that (re)connected after `since`. */
  backSince(since: number): number {
    let n = 0;
    for (let i = 0; i < this.size; i++) if (this.isUp[i] && this.lastUp[i]! > since) n++;
    return n;
  }

  /** Waits until `count` devices are back since `since`; the time that took (ms from `since`), or undefined on timeout. */
  async waitUp(count: number, since: number, timeoutMs: number): Promise<number | undefined> {
    const end = Date.now() + timeoutMs;
    while (this.backSince(since) < count) {
      if (this.failed) throw this.failed;
      if (Date.now() > end) return undefined;
      await new Promise((r) => setTimeout(r, 20));
    }
    // The count-th device's own connect time, not when this loop noticed.
    const times = this.lastUp.filter((t, i) => this.isUp[i] && t > since).sort((a, b) => a - b);
    return times[count - 1]! - since;
  }

  async stop(): Promise<void> {
    this.failed ??= new Error("stopped");
    await Promise.all(this.procs.map((p) => (p.exitCode !== null || p.signalCode !== null ? undefined : new Promise((r) => {
      const t = setTimeout(() => p.kill("SIGKILL"), 10_000);
      p.once("exit", () => (clearTimeout(t), r(undefined)));
      p.kill("SIGTERM");
    }))));
  }
}

if (process.argv[2] === "--fleet") await fleetProcess(JSON.parse(process.argv[3]!) as FleetInit);
