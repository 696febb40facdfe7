"""ChainFire's Python test harness, shared by the multi-process tests (tests/cluster) and the
operator lanes (nix/test-cluster/cluster runs `python3 -m chainfire_harness.lanes`):

  cluster.py           real members on loopback (Member, Cluster) and python-etcd3 clients
  probes.py            etcdctl / chainfire-backup runs and the parsers of what they print
  api.py               the etcd v3 API stubs generated from proto/ (build/python)
  lanes.py             the lanes' command line: start, stop, status and the lanes below
  durability_proof.py, rollout_soak.py, chaos.py, ops_proof.py: the lanes

Import it with tests/ (and, for api.py, build/python) on PYTHONPATH, as ctest does.
"""
