/** Capture on the laptop: what the rest of the client may use. */
export { CaptureService, CaptureUnavailableError, type CaptureConsent, type CaptureServiceOptions, type CaptureUnavailableReason } from "./capture-service.ts";
export { ActiveAppError, X11ActiveAppProbe, parseActiveWindow, type ActiveAppProbe, type X11ProbeOptions } from "./active-app.ts";
export { Tokenizer, tokenize, burstBucket, normalizeAppName, type InputEvent, type Modifiers, type BurstBucket, type TokenizerOptions } from "./tokenizer.ts";
