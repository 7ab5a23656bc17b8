"""Developer tools: not on an article's path.

``broker`` (the local Apache Kafka launcher), ``demo`` (``make demo``), ``scaffold``
(``stream new-plugin``), ``sink`` (``stream webhook-sink``, a receiver for demos and tests)
and ``noop`` (a plugin that does nothing, for measuring the framework's own cost).  The
benchmark lives outside the core, in ``bench/stream_bench``.
"""
