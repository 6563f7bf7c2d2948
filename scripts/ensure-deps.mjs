#!/usr/bin/env node
// Makes sure what the README's two commands need is on this machine before they run, so that
// both work right after a clone on a fresh Debian machine:
//   node scripts/ensure-deps.mjs simulate   npm packages, and Redis (REDIS_URL, or redis-server for the embedded one)
//   node scripts/ensure-deps.mjs test       the same, plus what the suite drives for real:
//                                           Xvfb, xdotool, xprop (x11-utils), chromium, and
//                                           moto's S3 server (Python) for the S3 store tests
// Missing npm packages are installed with `npm ci`; missing Debian packages with apt-get when we
// are root and apt-get exists. Otherwise it prints the one line to run and fails: a missing tool
// is never a silent skip.
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { findMotoPython, MOTO_REQUIREMENT, MOTO_VENV } from "./moto-python.mjs";

const root = new URL("..", import.meta.url).pathname;
const purpose = process.argv[2] ?? "test";
if (!["simulate", "test"].includes(purpose)) {
  console.error(`usage: node scripts/ensure-deps.mjs simulate|test (got '${purpose}')`);
  process.exit(2);
}

const has = (cmd) => spawnSync("sh", ["-c", `command -v ${cmd}`], { stdio: "ignore" }).status === 0;

// npm packages: a clone has none until `npm ci` (the lock file pins them).
if (!existsSync(join(root, "node_modules", ".package-lock.json"))) {
  console.error("npm packages missing: running `npm ci`…");
  const r = spawnSync("npm", ["ci", "--no-audit", "--no-fund"], { cwd: root, stdio: ["ignore", "inherit", "inherit"] });
  if (r.status !== 0) {
    console.error("`npm ci` failed: run it yourself and try again.");
    process.exit(1);
  }
}

// [command that proves it is there, Debian package, why]
const tools = [["redis-server", "redis-server", "the embedded Redis"]];
if (purpose === "test") {
  tools.push(
    ["Xvfb", "xvfb", "a real X server for the capture tests"],
    ["xdotool", "xdotool", "keyboard and mouse input under Xvfb"],
    ["xprop", "x11-utils", "the focused window's application name"],
    ["chromium", "chromium", "rendering the reviewer's HTML report"],
  );
}
const missing = tools.filter(([cmd]) => !(cmd === "redis-server" && process.env.REDIS_URL) && !has(cmd));
const isRoot = typeof process.getuid === "function" && process.getuid() === 0;
const done = () => process.exit(purpose !== "test" || ensureMoto() ? 0 : 1);
if (missing.length === 0) done();

const packages = missing.map(([, pkg]) => pkg);
if (isRoot && has("apt-get")) {
  console.error(`missing ${missing.map(([cmd, , why]) => `${cmd} (${why})`).join(", ")}: installing ${packages.join(" ")} with apt-get…`);
  const apt = (args) => spawnSync("apt-get", args, { stdio: ["ignore", "ignore", "inherit"], env: { ...process.env, DEBIAN_FRONTEND: "noninteractive" } });
  let r = apt(["install", "-y", "-q", "--no-install-recommends", ...packages]);
  if (r.status !== 0) {
    // A fresh machine has no package lists yet.
    apt(["update", "-q"]);
    r = apt(["install", "-y", "-q", "--no-install-recommends", ...packages]);
  }
  if (r.status === 0 && missing.every(([cmd]) => has(cmd))) done();
}
const redisHint = missing.some(([cmd]) => cmd === "redis-server") ? " (or set REDIS_URL=redis://HOST:PORT for Redis)" : "";
console.error(`missing ${missing.map(([cmd]) => cmd).join(", ")}: run \`sudo apt-get install -y ${packages.join(" ")}\`${redisHint}, then try again.`);
process.exit(1);

/**
 * moto's S3 server, a real S3-compatible server on loopback for the S3 store tests. A Python
 * that already has moto 5 (on PATH, or pyenv's) is used as it is; otherwise a venv is made in
 * .venv-test (gitignored; outside node_modules, which `npm ci` wipes) and moto[server] is pip
 * installed into it, after apt-installing python3-venv and python3-pip when root. If that cannot
 * be done it prints the one line to run and fails.
 */
function ensureMoto() {
  if (findMotoPython(root)) return true;
  const venv = join(root, MOTO_VENV);
  const tryVenv = () =>
    spawnSync("python3", ["-m", "venv", venv], { stdio: ["ignore", "ignore", "inherit"] }).status === 0 &&
    spawnSync(join(venv, "bin", "pip"), ["install", "-q", MOTO_REQUIREMENT], { stdio: ["ignore", "ignore", "inherit"] }).status === 0;
  console.error(`moto (an S3-compatible server for the S3 store tests) missing: installing ${MOTO_REQUIREMENT} into ${MOTO_VENV}…`);
  let ok = has("python3") && tryVenv();
  if (!ok && isRoot && has("apt-get")) {
    const pkgs = ["python3", "python3-venv", "python3-pip"];
    const apt = (args) => spawnSync("apt-get", args, { stdio: ["ignore", "ignore", "inherit"], env: { ...process.env, DEBIAN_FRONTEND: "noninteractive" } });
    if (apt(["install", "-y", "-q", "--no-install-recommends", ...pkgs]).status !== 0) {
      apt(["update", "-q"]);
      apt(["install", "-y", "-q", "--no-install-recommends", ...pkgs]);
    }
    ok = has("python3") && tryVenv();
  }
  if (ok && findMotoPython(root)) return true;
  console.error(`moto missing: run \`python3 -m venv ${MOTO_VENV} && ${MOTO_VENV}/bin/pip install '${MOTO_REQUIREMENT}'\` (Debian: apt-get install python3-venv first), then try again.`);
  return false;
}
