#!/usr/bin/env python3
"""Generates reference ε values with Google's dp_accounting, for test/fixtures.

Run against a checkout of google/differential-privacy (not part of this repository):
  PYTHONPATH=<checkout>/python/dp_accounting:<dir with an absl/logging.py stub> \
    python3 scripts/dp-reference/generate-vectors.py > test/fixtures/dp-accounting-vectors.json
Only numbers come out of this script; no dp_accounting code is copied into Tacit.
"""
import itertools
import json
import sys

import dp_accounting
from dp_accounting import pld, rdp

GRID_Z = [0.5, 0.8, 1.0, 1.5, 2.0, 4.0]
GRID_Q = [0.001, 0.01, 0.1, 0.5, 1.0]
GRID_T = [1, 10, 100, 1000, 10000]
GRID_D = [1e-8, 1e-6, 1e-5]


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
    if which in ("all", "pld") and t <= 1000:
      rec["pld"] = pld.PLDAccountant().compose(ev).get_epsilon(d)
    out.append(rec)
  for z, q, t in itertools.product([0.8, 1.0, 2.0], [0.01, 0.1], [1, 100, 1000]):
    ev = event(z, q, t, "fixed", 1_000_000)
    out.append({"z": z, "q": q, "steps": t, "delta": 1e-6, "sampling": "fixed", "population": 1_000_000,
                "rdp": rdp.RdpAccountant(neighboring_relation=dp_accounting.NeighboringRelation.REPLACE_ONE).compose(ev).get_epsilon(1e-6)})
  json.dump({"source": "google/differential-privacy python/dp_accounting", "vectors": out}, sys.stdout, indent=1)


if __name__ == "__main__":
  main()
