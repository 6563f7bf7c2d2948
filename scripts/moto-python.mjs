// Finds a Python that runs moto's S3 server (`python -m moto.server`), for the S3 store tests and
// scripts/ensure-deps.mjs. Candidates, in order: the project's venv (.venv-test, made by
// ensure-deps), python3 on PATH, pyenv's python3. Prints nothing; returns the path or undefined.
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";

export const MOTO_VENV = ".venv-test";
export const MOTO_REQUIREMENT = "moto[server]>=5,<6";
// moto 5 added conditional writes (If-None-Match: *); its server needs flask and flask_cors.
const CHECK = "import moto, moto.server, flask_cors; assert int(moto.__version__.split('.')[0]) >= 5, moto.__version__";

export function findMotoPython(root) {
  const pyenv = process.env.PYENV_ROOT ?? join(homedir(), ".pyenv");
  const candidates = [join(root, MOTO_VENV, "bin", "python"), "python3", join(pyenv, "shims", "python3")];
  for (const py of candidates) {
    if (py.includes("/") && !existsSync(py)) continue;
    if (spawnSync(py, ["-c", CHECK], { stdio: "ignore", timeout: 60_000 }).status === 0) return py;
  }
  return undefined;
}
