/**
 * One TestCluster shared by the tests of a describe block: started before the first, stopped
 * after the last (within the configured hook timeout: a real coordinator and Redis take a while
 * on a loaded machine). Returns a getter because the cluster exists only once beforeAll has run.
 */
import { afterAll, beforeAll } from "vitest";
import { TestCluster } from "./cluster.ts";

export function useSuiteCluster(options?: Parameters<typeof TestCluster.start>[0]): () => TestCluster {
  let cluster: TestCluster | undefined;
  beforeAll(async () => {
    cluster = await TestCluster.start(options);
  });
  afterAll(async () => {
    await cluster?.stop();
  });
  return () => {
    if (!cluster) throw new Error("the suite's TestCluster has not started (or failed to start)");
    return cluster;
  };
}
