import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    testTimeout: 120_000,
    hookTimeout: 120_000,
    // Integration tests start real redis-server and gRPC servers; two cores only.
    pool: "forks",
    poolOptions: { forks: { maxForks: 2, minForks: 1 } },
    // The stall reporter names a test file that never ends (see its header) instead of leaving CI
    // silent until its own limit.
    reporters: ["default", "./test/support/stall-reporter.ts"],
  },
});
