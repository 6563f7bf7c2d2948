/** The PLD accountant and the pieces it is built from (each a small pure module with its own tests). */
export { PldAccountant, equivalentNoiseMultiplier, flattenEvent, mergeLeaves, pldOfLeaves, numericalDeltaMargin, DEFAULT_VALUE_DISCRETIZATION_INTERVAL, MAX_PMF_POINTS, type PldLeaf, type PldPair } from "./pld-accountant.ts";
export { GaussianPrivacyLoss, connectDotsEpsilonForDelta, connectDotsDeltaForEpsilon, type Adjacency } from "./gaussian.ts";
export { connectDotsFixedGap } from "./connect-dots.ts";
export { composePmfs, selfComposePmf, selfConvolve, selfConvolveBounds, truncateTails, identityPmf, makePmf, pmfDeltaForEpsilon, pmfEpsilonForDelta, type Pmf } from "./pmf.ts";
export { fft, convolve, convolveFft, convolveNaive, nextPowerOfTwo } from "./fft.ts";
export { normalCdf, normalLogCdf, normalPpf, erfc } from "./normal.ts";
