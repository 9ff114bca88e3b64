"""Quality stage: the Great Expectations suites of ``expectations/`` run on Spark (:mod:`.suites`)."""
