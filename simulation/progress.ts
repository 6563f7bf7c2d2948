/**
 * Progress on stderr: one cli-progress bar per round counting the devices whose masked input
 * arrived, labelled with the current phase; a summary line per finished round.
 */
import cliProgress from "cli-progress";
import type { RoundMetrics } from "./metrics-types.ts";

export class SimulationProgress {
  private bar: cliProgress.SingleBar | undefined;
  private current = -1;
  private submitted = 0;

  constructor(
    private readonly rounds: number,
    private readonly quiet: boolean,
  ) {}

  startRound(round: number, devices: number, phase: string): void {
    if (this.quiet || round === this.current) return;
    this.bar?.stop();
    this.current = round;
    this.submitted = 0;
    this.bar = new cliProgress.SingleBar(
      {
        format: `round ${String(round + 1).padStart(String(this.rounds).length)}/${this.rounds} [{bar}] {value}/{total} devices | {phase}`,
        stream: process.stderr,
        hideCursor: false,
        clearOnComplete: false,
        noTTYOutput: false,
      },
      cliProgress.Presets.shades_classic,
    );
    this.bar.start(devices, 0, { phase });
  }

  phase(phase: string): void {
    this.bar?.update({ phase });
  }

  deviceSubmitted(round: number): void {
    if (round !== this.current) return;
    this.submitted += 1;
    this.bar?.update(this.submitted);
  }

  endRound(round: number, m: RoundMetrics): void {
    if (this.quiet) return;
    this.bar?.stop();
    this.bar = undefined;
    const loss = m.trainLoss === null ? "n/a" : m.trainLoss.toFixed(3);
    const sa = m.secagg as { mode?: string; degree?: number; threshold?: number; guarantee?: string } | undefined;
    if (sa?.mode && round === 0) process.stderr.write(`secure aggregation: ${sa.guarantee}\n`);
    process.stderr.write(
      `round ${round + 1}/${this.rounds} ${m.status}: survivors ${m.survivors}/${m.cohort}, train loss ${loss}, held-out top-1 ${(100 * m.eval.top1Micro).toFixed(1)}% top-3 ${(100 * m.eval.top3Micro).toFixed(1)}% (micro), ${m.wallSeconds.toFixed(1)} s\n`,
    );
  }

  stop(): void {
    this.bar?.stop();
  }
}
