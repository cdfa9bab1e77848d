"""vattfw's benchmark suites (import name ``vattfw_benchmarks``, folder ``benchmarks/``), run by
`vattfw bench [SUITE ...]`: each module ``<suite>.py`` has ``run(size="paper"|"toy") -> dict``
and a docstring saying what it measures.  Benchmarks are never timed unit tests."""
