export * from "./events.ts";
export * from "./accountant.ts";
export { RdpAccountant, DEFAULT_RDP_ORDERS, epsilonFromRdp, deltaFromRdp, rdpOfEvent } from "./rdp-accountant.ts";
export * from "./epsilon.ts";
export * from "./distributed-dp.ts";
export { RandomSource } from "./random-source.ts";
export { bernoulliExp, discreteLaplace, discreteGaussian, rationalOf, type Rational } from "./samplers.ts";
export { rotate, unrotate, paddedDimension } from "./rotation.ts";
export * from "./policy.ts";
