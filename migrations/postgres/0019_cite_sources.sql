-- Replies no longer end with "(Source: …)" unless the agent asks for it (`cite_sources`). Every
-- agent stored before answered with it; the stored settings now say, as the console and the API
-- show them, that they answer without it.
UPDATE agents SET config = jsonb_set(config::jsonb, '{cite_sources}', 'false'::jsonb)::text;
