-- 009: a drift result says why a feature was not tested (missing from the
-- training data, too few usable values) and how a featurelist type other
-- than "cont" / "cat" was settled from the training data.
ALTER TABLE drift_metrics ADD COLUMN note TEXT NULL;
