-- The Graph API version a Meta channel calls, when it chose one: NULL (every channel stored
-- before, and every channel of another provider) calls the installation's default version.
ALTER TABLE channels ADD COLUMN graph_version TEXT;
