// Worker-thread bootstrap: registers the TypeScript loader in this thread, then loads the
// training worker. (Loader hooks registered in the main thread do not reach worker threads.)
import { register } from "tsx/esm/api";

register();
await import("./train-worker.ts");
