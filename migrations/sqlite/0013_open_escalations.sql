-- The escalations still open, for the sweep that ends those no person answered in time.
CREATE INDEX escalations_open ON escalations (opened_at) WHERE closed_at IS NULL;
