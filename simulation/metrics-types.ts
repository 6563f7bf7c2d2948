/** The shape of metrics.json written by `tacit simulate`. */
import type { EvalMetrics } from "./evaluation.ts";
import type { RunSpec } from "../shared/run/index.ts";
import type { PersonalizationConfig } from "../shared/model/index.ts";

export interface RoundMetrics {
  round: number;
  status: string;
  /** Example-weighted mean of the submitting devices' finite training losses. */
  trainLoss: number | null;
  /** Devices whose local training diverged this round (they sent a zero update with its noise). */
  divergedDevices?: number;
  /**
   * The released predictor: the global model, or — when the run releases a mixture with the
   * public model (`release`) — that mixture.
   */
  eval: EvalMetrics;
  /** With a released mixture: the federated model alone. */
  evalFederatedOnly?: EvalMetrics;
  /** The released predictor combined on each device with its own statistics (simulation/evaluation.ts). */
  evalPersonalized?: EvalMetrics;
  /**
   * The same global model evaluated federatedly: each device's held-out slice (the eval set's
   * part of that user), summed by secure aggregation — counts only. The devices score the
   * federated model: with a released mixture, compare it with `evalFederatedOnly`. Absent when the run does not
   * evaluate federatedly (an --eval-dir eval set, or a DP run) or the evaluation failed.
   */
  federatedEval?: FederatedEvalMetrics;
  cohort: number;
  survivors: number;
  declines: number;
  phases: unknown;
  secagg?: unknown;
  deviceEpsilon: { max: number; median: number };
  populationEpsilon: number;
  wallSeconds: number;
  /** Adaptive clipping: the C the next round clips to (from the round's checkpoint). */
  nextClip?: number;
}

export interface FederatedEvalMetrics extends EvalMetrics {
  /** Devices whose counts were summed. */
  survivors: number;
  noiseMultiplier: number;
  /** ± bound on every summed count (0 without noise). */
  countErrorBound: number;
  /** Each example's loss is capped here on the device (bounded sensitivity): `loss` ≤ the uncapped `eval.loss`. */
  lossCapNats: number;
}

export interface SimulationMetrics {
  mode: "federated" | "centralized";
  /** False while the run is in progress (metrics.json is rewritten after every round) or if it was stopped. */
  complete: boolean;
  dataset: string;
  evalSource: string;
  users: number;
  trainEvents: number;
  evalEvents: number;
  rounds: RoundMetrics[];
  final: RoundMetrics | undefined;
  backend: string;
  parameterCount: number;
  wallSeconds: number;
  spec?: RunSpec;
  privacy: { noiseMultiplier: number; clip: number; delta: number; minSurvivors: number; mechanism: string; note: string };
  runId?: string;
  /** Where the initial model came from (public pretraining or seeded random init) and its hash. */
  initialModel?: InitialModelInfo;
  /** The initial model's metrics on the same eval set: what public data alone achieves. */
  publicOnly?: EvalMetrics;
  publicOnlyPersonalized?: EvalMetrics;
  /**
   * The released predictor is (1 − w)·p_public + w·p_federated (shared/model/release-mix.ts);
   * absent: the federated model alone.
   */
  release?: { federatedWeight: number; publicModelSha256: string };
  /** How the personalized evaluation combined the global model with each device's own data. */
  personalization?: { method: string; strength: number; config: PersonalizationConfig };
}

export interface InitialModelInfo {
  source: "public" | "random";
  sha256: string;
  dataset?: string;
  checkpoint?: string;
  cached?: boolean;
  pretrainSeconds?: number;
  /** Public data costs no privacy budget: the run's ε counts only the federated rounds. */
  privacyCost: "none";
}

