"""The composition root: the command line, process start-up, the dev stack, account
administration and a local Redis. The only package that imports both ``rest`` and
``gateway``; nothing imports it but the tests and the benchmarks."""
