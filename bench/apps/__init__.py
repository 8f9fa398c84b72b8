"""The apps the benchmarks serve: for the adapter benchmark, each framework's
resonate_web routes and the same work written by hand in that framework on the raw
SDK (the baseline); for the distributed one, a hand-written FastAPI route
dispatching with the raw SDK's ``rpc`` (``rpc_by_hand``)."""
