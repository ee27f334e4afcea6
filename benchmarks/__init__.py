"""Speed and memory benchmarks of the library, each measured next to its hardware floor.

`python -m benchmarks.run --scale baby` times every registered model, the evaluator, the LM
encoder and the OAT cost on Amazon Baby, runs each measurement in its own subprocess (so
peak RSS is per measurement) and writes JSON/CSV under results/benchmarks/, labelled with
the device. See benchmarks/run.py for what is measured and benchmarks/measure.py for the
helpers (growth exponents, synthetic scaled graphs, timing-only features).
"""
