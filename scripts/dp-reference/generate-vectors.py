#!/usr/bin/env python3
"""Generates reference ε values with Google's dp_accounting, for test/fixtures.

Run against a checkout of google/differential-privacy (not part of this repository). The exact
commands used for test/fixtures/dp-accounting-vectors.json (dp_accounting 0.6.0, commit
b5b0286e313b64a692abfc8c528d54ef47d960a0; numpy 2.4, scipy 1.17; attrs and mpmath from the
system; absl-py is not installed, so a two-file stub stands in for `absl.logging`):

  mkdir -p /tmp/dpref/src /tmp/dpref/stubs/absl
  git --git-dir=<google/differential-privacy git dir> archive b5b0286e313b64a692abfc8c528d54ef47d960a0 \
    python/dp_accounting | tar -x -C /tmp/dpref/src
  printf '' > /tmp/dpref/stubs/absl/__init__.py
  printf 'import logging as _l\n_g = _l.getLogger("absl")\ndebug, info, warning, error = _g.debug, _g.info, _g.warning, _g.error\nwarn, fatal = warning, _g.critical\n' \
    > /tmp/dpref/stubs/absl/logging.py
  PYTHONPATH=/tmp/dpref/src/python/dp_accounting:/tmp/dpref/stubs \
    python3 scripts/dp-reference/generate-vectors.py > test/fixtures/dp-accounting-vectors.json

(about 10 minutes on one core; `generate-vectors.py rdp` skips the PLD values).

PLD values ("pld") are computed for every Poisson record with dp_accounting's PLDAccountant
(add/remove neighbours, value_discretization_interval 1e-4), for all steps up to 10,000, except
q = 1 (the plain Gaussian) records whose connect-the-dots grid would exceed PLD_MAX_GRID points:
dp_accounting materialises the k-fold Gaussian (σ = z/√k) on a 1e-4 grid spanning
≈ (2·9.8σ + 1)/σ², i.e. 4·10⁸ points (≈ 30 GB) for z = 0.5, k = 10,000. Fixed-size sampling records
have no PLD value: dp_accounting's PLD accountant does not support SampledWithoutReplacementDpEvent.
Only numbers come out of this script; no dp_accounting code is copied into Tacit.
"""
import itertools
import json
import math
import sys

import dp_accounting
from dp_accounting import pld, rdp

GRID_Z = [0.5, 0.8, 1.0, 1.5, 2.0, 4.0]
GRID_Q = [0.001, 0.01, 0.1, 0.5, 1.0]
GRID_T = [1, 10, 100, 1000, 10000]
GRID_D = [1e-8, 1e-6, 1e-5]
# Largest connect-the-dots grid (points) we ask dp_accounting to materialise for a q = 1 record.
PLD_MAX_GRID = 2e7


def plain_gaussian_grid_points(z, t):
  """Approximate size of dp_accounting's PLD grid for t-fold Gaussian(z) (σ = z/√t, interval 1e-4)."""
  sigma = z / math.sqrt(t)
  return (2 * 9.8 * sigma + 1) / sigma**2 / 1e-4


def event(z, q, t, sampling, population):
  g = dp_accounting.GaussianDpEvent(z)
  if sampling == "poisson":
    inner = dp_accounting.PoissonSampledDpEvent(q, g) if q < 1 else g
  else:
    m = round(q * population)
    inner = dp_accounting.SampledWithoutReplacementDpEvent(population, m, g) if m < population else g
  return dp_accounting.SelfComposedDpEvent(inner, t)


def main():
  which = sys.argv[1] if len(sys.argv) > 1 else "all"
  out = []
  for z, q, t, d in itertools.product(GRID_Z, GRID_Q, GRID_T, GRID_D):
    # Thin the grid (every combination of z/q/t with one δ each, rotating) to keep it small.
    if GRID_D.index(d) != (GRID_Z.index(z) + GRID_Q.index(q) + GRID_T.index(t)) % 3:
      continue
    ev = event(z, q, t, "poisson", 1_000_000)
    r = rdp.RdpAccountant().compose(ev).get_epsilon(d)
    rec = {"z": z, "q": q, "steps": t, "delta": d, "sampling": "poisson", "rdp": r}
    if which in ("all", "pld") and (q < 1 or plain_gaussian_grid_points(z, t) <= PLD_MAX_GRID):
      rec["pld"] = pld.PLDAccountant().compose(ev).get_epsilon(d)
      print(f"z={z} q={q} t={t} d={d} pld={rec['pld']}", file=sys.stderr, flush=True)
    out.append(rec)
  for z, q, t in itertools.product([0.8, 1.0, 2.0], [0.01, 0.1], [1, 100, 1000]):
    ev = event(z, q, t, "fixed", 1_000_000)
    out.append({"z": z, "q": q, "steps": t, "delta": 1e-6, "sampling": "fixed", "population": 1_000_000,
                "rdp": rdp.RdpAccountant(neighboring_relation=dp_accounting.NeighboringRelation.REPLACE_ONE).compose(ev).get_epsilon(1e-6)})
  json.dump({"source": "google/differential-privacy python/dp_accounting", "vectors": out}, sys.stdout, indent=1)


if __name__ == "__main__":
  main()
