/**
 * The command-line options every held-out experiment script shares: which dataset, how much of
 * each device's file is held out, and which global model (a checkpoint, else the public model
 * pretrained on --pretrain, cached).
 */
import { resolve } from "node:path";

export const HELD_OUT_OPTIONS = {
  dataset: { type: "string", default: resolve("../shared/datasets/devactions-large") },
  pretrain: { type: "string", default: "data/devactions" },
  checkpoint: { type: "string" },
  "eval-fraction": { type: "string", default: "0.3" },
} as const;
