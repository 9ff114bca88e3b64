"""Features stage: the user-history kernel (:mod:`.history`), the offline DataFrame transforms
(:mod:`.offline`), the online stateful operator (:mod:`.online`), and the jobs that write the gold
tables and check both paths agree (:mod:`.materialize`). The feature declarations themselves are in
:mod:`lakehouse.contract.features`."""
