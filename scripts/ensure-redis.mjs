#!/usr/bin/env node
// Makes sure a Redis is available before the simulation or the tests run: REDIS_URL when set;
// otherwise redis-server must be installed (the embedded default starts it). Installs it
// with apt-get when missing and we are root; otherwise prints the one line to run.
import { spawnSync } from "node:child_process";

const has = (cmd) => spawnSync("sh", ["-c", `command -v ${cmd}`], { stdio: "ignore" }).status === 0;

if (process.env.REDIS_URL) process.exit(0);
if (has("redis-server")) process.exit(0);

const isRoot = typeof process.getuid === "function" && process.getuid() === 0;
if (isRoot && has("apt-get")) {
  console.error("redis-server not found: installing it with apt-get (Debian package redis-server)…");
  const run = (args) => spawnSync("apt-get", args, { stdio: ["ignore", "ignore", "inherit"], env: { ...process.env, DEBIAN_FRONTEND: "noninteractive" } });
  let r = run(["install", "-y", "-q", "redis-server"]);
  if (r.status !== 0) {
    run(["update", "-q"]);
    r = run(["install", "-y", "-q", "redis-server"]);
  }
  if (r.status === 0 && has("redis-server")) process.exit(0);
}
console.error("redis-server not found: run `sudo apt-get install -y redis-server` (or set REDIS_URL=redis://HOST:PORT), then try again.");
process.exit(1);
