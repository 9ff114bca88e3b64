"""The platform layer: every adapter to the outside, fed by settings. The Spark session
(:mod:`.spark`), Delta reads and writes (:mod:`.delta`), Kafka clients, sources and the local broker
(:mod:`.kafka`), streaming-query plumbing (:mod:`.streaming`), the local JVM services (:mod:`.jvm`,
:mod:`.catalog_server`), job launching (:mod:`.jobs`), deadline waits (:mod:`.waits`), isolated
settings for tests and benchmarks (:mod:`.isolation`) and what entry points and DAGs share
(:mod:`.entrypoint`, :mod:`.airflow`). Imports only the contract, settings and errors."""
