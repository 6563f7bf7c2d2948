/**
 * The next-action model on tfjs-core: one-hot × embedding matrix (the wasm backend lacks the
 * UnsortedSegmentSum kernel that a gather embedding needs in backprop), a ReLU hidden layer
 * over the concatenated window, and a softmax over the hashed vocabulary. One Trainer holds one
 * set of variables and is reused across rounds; weights move in and out as flat vectors.
 */
import * as tf from "@tensorflow/tfjs-core";
import { hasCopy, isTied, outputSize, parameterCount, parameterShapes, type ModelSpec } from "./spec.ts";
import type { Examples } from "./examples.ts";
import { seededRandom } from "./weights.ts";

export interface TrainOptions {
  epochs: number;
  batchSize: number;
  learningRate: number;
  seed: number;
  optimizer?: "sgd" | "adam";
  /** Stop after this many steps (a fresh random subset of the data each call). */
  maxSteps?: number;
}

export interface EvalResult {
  loss: number;
  top1: number;
  top3: number;
  count: number;
}

/**
 * Embedding lookup with a hand-written gradient: forward is a gather, backward adds each row of
 * the upstream gradient into its token's row (a scatter-add in plain JS). The wasm backend lacks
 * the UnsortedSegmentSum kernel a gather's own gradient needs; the alternative, one-hot × table,
 * costs B·T·V·D multiply-adds each way and was 60 % of a training step.
 */
function embedRows(table: tf.Tensor2D, ids: tf.Tensor1D): tf.Tensor2D {
  const idArr = ids.dataSync() as Int32Array;
  const [rows, dim] = table.shape;
  // tfjs types the custom function's arguments as a union of tensors and the save function.
  const f = tf.customGrad(((t: tf.Tensor, save: tf.GradSaveFunc) => {
    save([]);
    return {
      value: tf.gather(t as tf.Tensor2D, ids),
      gradFunc: (dy: tf.Tensor) => {
        const g = dy.dataSync() as Float32Array;
        const out = new Float32Array(rows * dim);
        for (let r = 0; r < idArr.length; r++) {
          const o = idArr[r]! * dim;
          const s = r * dim;
          for (let k = 0; k < dim; k++) out[o + k]! += g[s + k]!;
        }
        return tf.tensor2d(out, [rows, dim]);
      },
    };
  }) as unknown as Parameters<typeof tf.customGrad>[0]);
  return f(table) as tf.Tensor2D;
}

/**
 * a × b whose gradient uses explicit transposes: the wasm backend's matMul with a transposed
 * operand runs 3–5× slower than a transpose followed by a plain matMul (measured on the tied
 * model's 64×32 · 32×1026 product), and the built-in gradient of matMul is two such products.
 */
function matMulPlain(a: tf.Tensor2D, b: tf.Tensor2D): tf.Tensor2D {
  const f = tf.customGrad(((x: tf.Tensor, y: tf.Tensor, save: tf.GradSaveFunc) => {
    save([x, y]);
    return {
      value: tf.matMul(x as tf.Tensor2D, y as tf.Tensor2D),
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const [xs, ys] = saved as [tf.Tensor2D, tf.Tensor2D];
        return [tf.matMul(dy as tf.Tensor2D, tf.transpose(ys)), tf.matMul(tf.transpose(xs), dy as tf.Tensor2D)];
      },
    };
  }) as unknown as Parameters<typeof tf.customGrad>[0]);
  return f(a, b) as tf.Tensor2D;
}

export class WeightShapeError extends Error {
  override name = "WeightShapeError";
}

/** Rows per forward pass when the model only predicts (evaluation, personalization). */
const DISTRIBUTION_BATCH = 1024;

export class Trainer {
  private readonly vars: tf.Variable[];
  private readonly size: number;
  readonly outputs: number;

  constructor(readonly spec: ModelSpec) {
    this.size = parameterCount(spec);
    this.outputs = outputSize(spec);
    this.vars = parameterShapes(spec).map((p) => tf.variable(tf.zeros(p.shape), true, `${p.name}-${Math.random().toString(36).slice(2)}`));
  }

  setWeights(flat: Float32Array): void {
    if (flat.length !== this.size) throw new WeightShapeError(`weights have ${flat.length} values, the model has ${this.size}`);
    let o = 0;
    for (const v of this.vars) {
      const n = v.size;
      tf.tidy(() => v.assign(tf.tensor(flat.subarray(o, o + n), v.shape)));
      o += n;
    }
  }

  getWeights(): Float32Array {
    const out = new Float32Array(this.size);
    let o = 0;
    for (const v of this.vars) {
      out.set(v.dataSync() as Float32Array, o);
      o += v.size;
    }
    return out;
  }

  private logits(x: tf.Tensor2D): tf.Tensor2D {
    const [emb, w1, b1] = this.vars as [tf.Variable, tf.Variable, tf.Variable];
    const [batch, T] = x.shape;
    // One-hot × table rather than a gather: the wasm backend lacks UnsortedSegmentSum, which a
    // gather's gradient needs (and a gather forward with a one-hot gradient measured slower).
    const e = embedRows(emb as tf.Tensor2D, tf.reshape(x, [batch * T]) as tf.Tensor1D); // [B*T, D]
    const h = tf.relu(tf.add(matMulPlain(tf.reshape(e, [batch, T * this.spec.embedDim]), w1 as tf.Tensor2D), b1));
    let logits: tf.Tensor2D;
    if (isTied(this.spec)) {
      // Tied output: project to the embedding width and score against the embedding table.
      const [, , , p, c, b] = this.vars as tf.Variable[];
      const q = tf.add(matMulPlain(h as tf.Tensor2D, p as tf.Tensor2D), c!) as tf.Tensor2D;
      logits = tf.add(matMulPlain(q, tf.transpose(emb as tf.Tensor2D)), b!) as tf.Tensor2D;
    } else {
      const [, , , w2, b2] = this.vars as tf.Variable[];
      logits = tf.add(matMulPlain(h as tf.Tensor2D, w2 as tf.Tensor2D), b2!) as tf.Tensor2D;
    }
    return hasCopy(this.spec) ? tf.add(logits, this.copyLogits(x)) : logits;
  }

  /** Σ_t c_t · onehot(context_t): [batch, V]; the copy weights are the last variable (spec.ts). */
  private copyLogits(x: tf.Tensor2D): tf.Tensor2D {
    const [batch, T] = x.shape;
    const c = this.vars[this.vars.length - 1]!;
    const onehot = tf.reshape(tf.oneHot(tf.reshape(x, [batch * T]) as tf.Tensor1D, this.outputs), [batch, T, this.outputs]);
    return tf.sum(tf.mul(onehot, tf.reshape(c, [1, T, 1])), 1) as tf.Tensor2D;
  }

  private batchTensors(ex: Examples, idx: Int32Array | number[], from: number, to: number): { x: tf.Tensor2D; y: tf.Tensor1D } {
    const T = this.spec.window;
    const n = to - from;
    const xb = new Int32Array(n * T);
    const yb = new Int32Array(n);
    for (let k = 0; k < n; k++) {
      const i = idx[from + k]!;
      xb.set(ex.x.subarray(i * T, i * T + T), k * T);
      yb[k] = ex.y[i]!;
    }
    return { x: tf.tensor2d(xb, [n, T], "int32"), y: tf.tensor1d(yb, "int32") };
  }

  /** Trains in place; returns the mean training loss over all steps. */
  async train(ex: Examples, o: TrainOptions): Promise<{ loss: number; steps: number }> {
    if (ex.count === 0) return { loss: NaN, steps: 0 };
    const opt = o.optimizer === "adam" ? tf.train.adam(o.learningRate) : tf.train.sgd(o.learningRate);
    const rand = seededRandom(o.seed);
    const idx = Array.from({ length: ex.count }, (_, i) => i);
    let total = 0;
    let steps = 0;
    try {
      const maxSteps = o.maxSteps ?? Infinity;
      for (let epoch = 0; epoch < o.epochs && steps < maxSteps; epoch++) {
        for (let i = idx.length - 1; i > 0; i--) {
          const j = Math.floor(rand() * (i + 1));
          [idx[i], idx[j]] = [idx[j]!, idx[i]!];
        }
        for (let from = 0; from < ex.count && steps < maxSteps; from += o.batchSize) {
          const to = Math.min(ex.count, from + o.batchSize);
          const lossT = tf.tidy((): tf.Scalar => {
            const { x, y } = this.batchTensors(ex, idx, from, to);
            const labels = tf.oneHot(y, this.outputs);
            return opt.minimize(() => tf.losses.softmaxCrossEntropy(labels, this.logits(x)) as tf.Scalar, true, this.vars)!;
          });
          total += (await lossT.data())[0]!;
          lossT.dispose();
          steps += 1;
          // The backends resolve data() as a microtask: without a macrotask turn per step, a
          // thread training many devices back to back starves its own gRPC I/O (keepalive
          // acks, submissions) for minutes and the coordinator drops all of them.
          await new Promise<void>((resolve) => setImmediate(resolve));
        }
      }
    } finally {
      opt.dispose();
    }
    return { loss: total / steps, steps };
  }

  async evaluate(ex: Examples): Promise<EvalResult> {
    if (ex.count === 0) return { loss: NaN, top1: 0, top3: 0, count: 0 };
    const seq = Array.from({ length: ex.count }, (_, i) => i);
    let loss = 0;
    let hit1 = 0;
    let hit3 = 0;
    const B = 2048;
    for (let from = 0; from < ex.count; from += B) {
      const to = Math.min(ex.count, from + B);
      const [l, top] = tf.tidy(() => {
        const { x, y } = this.batchTensors(ex, seq, from, to);
        const logits = this.logits(x);
        const lossSum = tf.sum(tf.losses.softmaxCrossEntropy(tf.oneHot(y, this.outputs), logits, undefined, undefined, tf.Reduction.NONE));
        return [lossSum, tf.topk(logits, 3).indices] as const;
      });
      loss += (await l.data())[0]!;
      const ids = (await top.data()) as Int32Array;
      l.dispose();
      top.dispose();
      for (let k = 0; k < to - from; k++) {
        const target = ex.y[from + k]!;
        if (ids[k * 3] === target) hit1 += 1;
        if (ids[k * 3] === target || ids[k * 3 + 1] === target || ids[k * 3 + 2] === target) hit3 += 1;
      }
    }
    return { loss: loss / ex.count, top1: hit1 / ex.count, top3: hit3 / ex.count, count: ex.count };
  }

  /** Calls fn with the predicted distribution over next tokens for every example (the array is reused). */
  forEachDistribution(ex: Examples, fn: (row: number, probs: Float64Array) => void): void {
    const seq = Array.from({ length: ex.count }, (_, i) => i);
    const row = new Float64Array(this.outputs);
    for (let from = 0; from < ex.count; from += DISTRIBUTION_BATCH) this.distributionBatch(ex, seq, from, row, fn);
  }

  /**
   * As forEachDistribution, with a macrotask turn after every batch. For a thread that also
   * serves gRPC: the simulation evaluates each round's model on the coordinator's thread while the
   * next round runs, and 110k held-out events evaluated in one go blocked it for tens of seconds —
   * long enough for the devices' keepalive pings to time out and the round to lose them.
   */
  async forEachDistributionYielding(ex: Examples, fn: (row: number, probs: Float64Array) => void): Promise<void> {
    const seq = Array.from({ length: ex.count }, (_, i) => i);
    const row = new Float64Array(this.outputs);
    for (let from = 0; from < ex.count; from += DISTRIBUTION_BATCH) {
      this.distributionBatch(ex, seq, from, row, fn);
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
  }

  /** Rows [from, from + DISTRIBUTION_BATCH) of `ex`: one forward pass, then `fn` per row (`row` reused). */
  private distributionBatch(ex: Examples, seq: number[], from: number, row: Float64Array, fn: (row: number, probs: Float64Array) => void): void {
    const V = this.outputs;
    const to = Math.min(ex.count, from + DISTRIBUTION_BATCH);
    const probs = tf.tidy(() => tf.softmax(this.logits(this.batchTensors(ex, seq, from, to).x)));
    const data = probs.dataSync() as Float32Array;
    probs.dispose();
    for (let k = 0; k < to - from; k++) {
      for (let v = 0; v < V; v++) row[v] = data[k * V + v]!;
      fn(from + k, row);
    }
  }

  dispose(): void {
    for (const v of this.vars) v.dispose();
  }
}
