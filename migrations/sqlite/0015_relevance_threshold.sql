-- An agent's confidence is now the best passage's relevance (its similarity to the question with
-- both centred), on a scale of its own: a threshold set on the old scale (raw sentence scores,
-- default 0.45) would escalate most answerable questions. Every agent takes the new default.
UPDATE agents SET config = json_set(config, '$.confidence_threshold', 0.22);
