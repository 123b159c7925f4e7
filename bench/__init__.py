"""Benchmark scripts, one per area; `agile bench` runs each as a script (see agile/cli/bench.py).

This file makes ``bench`` a package so that tools map ``bench/pqc.py`` to ``bench.pqc``
rather than to a second top-level ``pqc`` module.
"""
